"""Capture: a sample of the served images kept on disk, for labelling and for drift checks.

Off unless ``SERVICE_CAPTURE_DIR`` is set. Then ``SERVICE_CAPTURE_RATE`` of the predict
requests (a random draw per request, default 1%) have each answered image written as a
PNG with one line in ``index.jsonl`` (request id, time, model, version, prediction,
confidence, probabilities, file); the format is ``artifact/captures.py``.

The request path only draws the random number and hands the arrays it already holds to
a bounded queue (``put_nowait``); one background thread per worker encodes the PNGs and
appends the index lines. When the queue is full the request's images are dropped and
counted (``service_captures_total{result="dropped"}``), never waited for. The same thread
keeps the folder within ``SERVICE_CAPTURE_MAX_MB``: when its estimate of the bytes on disk
(from the shared index's growth, so the other workers' writes count too) passes the
budget, and every ``RESCAN_EVERY`` writes, it lists the folder, deletes the oldest images
until 90% of the budget is left and rewrites the index without them (``artifact.captures``
says why no line is lost).
Queued images are lost when a worker exits: the sample is a sample.
"""
from __future__ import annotations

import io
import json
import logging
import os
import queue
import random
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from artifact import captures as fmt

from .metrics import Metrics

log = logging.getLogger("service")

QUEUE_SIZE = 256        # requests waiting for the writer, per worker; then dropped
RESCAN_EVERY = 200      # writes between two listings of the folder (other workers write too)
KEEP_AFTER_EVICTION = 0.9


class Capture:
    def __init__(self, directory: str, rate: float, max_mb: float, min_confidence: float | None,
                 metrics: Metrics):
        self.enabled = bool(directory) and rate > 0
        self.directory = Path(directory) if directory else None
        self._rate = rate
        self._budget = int(max_mb * 1024 * 1024)
        self._min_confidence = min_confidence
        self._metrics = metrics
        self._queue: queue.Queue = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None    # started in the worker, after fork
        self._lock = threading.Lock()
        self._listed: tuple | None = None   # (bytes on disk, bytes of the index) when last listed
        self._since_scan = 0

    def offer(self, lv, request_id: str, items: list, results: list) -> None:
        """Called once per answered predict request, on the request thread: cheap, never blocks."""
        if not self.enabled or random.random() >= self._rate:
            return
        job = (lv, request_id or "", fmt.utc_now(), items, results)
        self._start()
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            answered = sum(isinstance(r, np.ndarray) for r in results)
            self._metrics.captures.labels(lv.name, str(lv.version), "dropped").inc(answered)

    def _start(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, name="capture", daemon=True)
                    self._thread.start()

    def _loop(self) -> None:
        while True:
            lv, request_id, when, items, results = self._queue.get()
            try:
                written = self._write(lv, request_id, when, items, results)
                if written:
                    self._metrics.captures.labels(lv.name, str(lv.version), "captured").inc(written)
            except Exception as exc:     # a full disk or a bad folder must not end the thread
                self._metrics.captures.labels(lv.name, str(lv.version), "dropped").inc(len(items))
                log.warning("capture failed", extra={"event": "capture_error", "error": repr(exc)})

    def _write(self, lv, request_id: str, when: str, items: list, results: list) -> int:
        info = lv.info
        limit = self._min_confidence if self._min_confidence is not None else info.min_confidence
        # made here, not on the request path: a folder that cannot be made is a counted drop, never a 500
        (self.directory / lv.name).mkdir(parents=True, exist_ok=True)
        entries = []
        for i, (pixels, row) in enumerate(zip(items, results)):
            if not isinstance(row, np.ndarray):     # the item failed: nothing was served
                continue
            rid = request_id if len(items) == 1 else f"{request_id}-{i}"
            data = png(pixels, info.input.invert)
            name = f"{lv.name}/{fmt.file_name(rid)}.png"
            with open(self.directory / name, "wb") as f:
                f.write(data)
            top = int(np.argmax(row))
            confidence = float(row[top])
            entries.append({"request_id": rid, "time": when, "model": lv.name, "version": lv.version,
                            "prediction": info.labels[top] if confidence >= limit else None,
                            "confidence": round(confidence, 6),
                            "probabilities": [round(float(p), 6) for p in row], "file": name})
        if entries:
            fmt.append(self.directory, fmt.INDEX, entries)
            self._account()
        return len(entries)

    def _account(self) -> None:
        """List the folder again when it may be over budget. Every worker appends to the one
        index, so its growth since the last listing, times the bytes on disk per index byte
        then, estimates what all workers added, at the cost of one stat per request kept."""
        self._since_scan += 1
        index = os.stat(self.directory / fmt.INDEX).st_size
        if self._listed is not None and self._since_scan < RESCAN_EVERY:
            total, listed_index = self._listed
            if index >= listed_index:     # smaller: another worker dropped images; list again
                if total + (index - listed_index) * total / max(1, listed_index) <= self._budget:
                    return
        self._listed = self.enforce_budget()
        self._since_scan = 0

    def enforce_budget(self) -> tuple:
        """List the folder; over budget, drop the oldest images and their index lines.
        Returns (bytes left on disk, bytes of the index)."""
        images = [(entry.stat().st_mtime, entry.stat().st_size, entry.path)
                  for folder in os.scandir(self.directory) if folder.is_dir() and not folder.name.startswith(".")
                  for entry in os.scandir(folder.path) if entry.name.endswith(".png")]
        index = self.directory / fmt.INDEX
        total = sum(size for _, size, _ in images) + (index.stat().st_size if index.exists() else 0)
        if total <= self._budget:
            return total, index.stat().st_size if index.exists() else 0
        target = int(self._budget * KEEP_AFTER_EVICTION)
        dropped = set()
        images.sort()
        with fmt.locked(self.directory, exclusive=True):
            for _, size, path in images:
                if total <= target:
                    break
                try:
                    os.unlink(path)
                except FileNotFoundError:    # another worker dropped it first
                    pass
                dropped.add(os.path.relpath(path, self.directory))
                total -= size + 300
            kept = [e for e in fmt.read_index(self.directory) if e.get("file") not in dropped]
            text = "".join(json.dumps(e) + "\n" for e in kept)
            tmp = self.directory / f".{fmt.INDEX}.{os.getpid()}"
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, index)
        log.info("capture budget: dropped oldest images",
                 extra={"event": "capture_evicted", "images": len(dropped), "budget_bytes": self._budget})
        size = len(text.encode())
        return sum(_size(p) for _, _, p in images) + size, size


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:     # dropped here, or by another worker meanwhile
        return 0


def png(pixels: np.ndarray, invert: bool) -> bytes:
    """The model input [H,W,C] as a PNG that the version's decoder turns into the same input."""
    if invert:
        pixels = 255 - pixels
    image = Image.fromarray(pixels[:, :, 0] if pixels.shape[-1] == 1 else pixels)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
