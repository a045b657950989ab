"""Captured requests: the folder the service writes a sample of served images into, and
the labels people attach to them. Read by ``python -m training captures`` (an image
folder for ``retrain --data``), ``python -m training feedback`` and the service's
``POST /v1/feedback``; the drift check reads the same index.

``<capture_dir>/``:

- ``index.jsonl``: one JSON object per captured image, appended as it is written::

      {"request_id": "9f2c...-0", "time": "2026-12-06T04:55:01.123Z", "model": "fashion",
       "version": 3, "prediction": "Bag", "confidence": 0.97, "probabilities": [...],
       "file": "fashion/9f2c...-0.png"}

  ``probabilities`` in the version's class order; ``prediction`` null when the top
  probability was below the ``min_confidence`` in force for the service or the version;
  ``file`` relative to the capture folder. A single-image request's id is the request's
  ``X-Request-ID``; the images of a batch are ``<request id>-<index>``.
- ``<model>/<file name>.png``: the image as the model saw it (inversion undone), so it
  decodes to the same input again. The file name is the request id where that is a
  safe file name, else a hash of it; ``file`` is the authority.
- ``labels.jsonl``: ``{"request_id", "label", "time"}`` per line; for one request id
  the last line wins.

Every line is one ``os.write`` on a descriptor opened with ``O_APPEND``, so lines
appended by several processes (gunicorn workers, a feedback command) never interleave.
The service drops the oldest images when the folder exceeds its budget and rewrites
the index without them under an exclusive ``flock`` of ``.lock``; appenders hold it
shared, so no appended line is lost to the rewrite. An entry may briefly name a file
already dropped: readers skip what they cannot open.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path

from artifact import metadata as md

INDEX = "index.jsonl"
LABELS = "labels.jsonl"
LOCK = ".lock"
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class CaptureError(ValueError):
    """The capture folder, a request id or a label is not usable; the message says which."""


def utc_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def file_name(request_id: str) -> str:
    """A file name for ``request_id``: itself when safe, else a hash (a client's id may hold '/')."""
    if _SAFE.fullmatch(request_id):
        return request_id
    return "id-" + hashlib.sha256(request_id.encode()).hexdigest()[:32]


@contextmanager
def locked(directory, exclusive: bool):
    fd = os.open(Path(directory) / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)     # closing releases the flock


def append(directory, name: str, entries: list) -> None:
    """Append ``entries`` to ``directory/name`` as JSON lines, each line one write."""
    with locked(directory, exclusive=False):
        fd = os.open(Path(directory) / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            for entry in entries:
                line = memoryview((json.dumps(entry) + "\n").encode())
                written = os.write(fd, line)
                if written != len(line):   # a full disk; the rest would land as a separate, broken line
                    raise OSError(f"short write to {name}: {written} of {len(line)} bytes")
        finally:
            os.close(fd)


def _lines(path: Path) -> list:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:     # a line cut by a crash mid-write: skip it, keep the rest
            continue
        if isinstance(entry, dict) and isinstance(entry.get("request_id"), str):
            entries.append(entry)
    return entries


def require_dir(directory) -> Path:
    path = Path(directory)
    if not path.is_dir():
        raise CaptureError(f"capture folder '{path}' does not exist (the service writes it when "
                           "SERVICE_CAPTURE_DIR is set)")
    return path


def read_index(directory) -> list:
    """The index's entries in the order written (the same request id may recur: the last one counts)."""
    return _lines(Path(directory) / INDEX)


def read_labels(directory) -> dict:
    """request id -> label, the last line for each id winning."""
    return {e["request_id"]: e["label"] for e in _lines(Path(directory) / LABELS) if isinstance(e.get("label"), str)}


def find(directory, request_id: str) -> dict | None:
    """The last index entry of ``request_id``, or None."""
    found = None
    for entry in read_index(directory):
        if entry["request_id"] == request_id:
            found = entry
    return found


def classes(models_dir, model: str, version: int) -> list:
    """The class names of a published version (its metadata.json), for checking a label."""
    directory = Path(models_dir) / model / str(version)
    try:
        return list(md.read(directory).labels)
    except (OSError, md.MetadataError):
        raise CaptureError(f"version {version} of '{model}' is not in the repository '{models_dir}': "
                           "its classes cannot be checked") from None


def attach_label(directory, models_dir, request_id: str, label: str) -> dict:
    """Record ``label`` as the true class of the captured ``request_id``; returns the line
    written plus the model and version. Raises KeyError for an id not captured, CaptureError
    for a label that is not one of the version's classes."""
    if not isinstance(request_id, str) or not request_id:
        raise CaptureError("request_id must be a non-empty string")
    if not isinstance(label, str) or not label:
        raise CaptureError("label must be a non-empty string")
    entry = find(directory, request_id)
    if entry is None:
        raise KeyError(request_id)
    known = classes(models_dir, entry["model"], entry["version"])
    if label not in known:
        raise CaptureError(f"label {label!r} is not a class of {entry['model']} version {entry['version']} "
                           f"({', '.join(known)})")
    line = {"request_id": request_id, "label": label, "time": utc_now()}
    append(directory, LABELS, [line])
    return {**line, "model": entry["model"], "version": entry["version"]}
