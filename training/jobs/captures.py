"""Labelled captures -> an image folder that ``retrain --data`` takes.

The service keeps a sample of what it served (``SERVICE_CAPTURE_DIR``, format in
``artifact/captures.py``); people attach true labels (``POST /v1/feedback`` or
``python -m training feedback``). ``export`` writes every labelled capture into
``<out>/<label>/capture-<file>.png``, and, with ``merge_with``, a copy of the existing
training folder beside them.

Why no old test image moves into training: a flat folder is split by a hash of each
file's ``<class>/<file name>`` (``training.data.folders.hash_split``), so the copy keeps
every old file under the same class and name and therefore in the same split; the new
captures only add keys. A pre-split folder is copied split by split, and each capture
goes to the split its own key hashes to (train when that split folder is absent).
After writing, the result is scanned and every old test image is checked to be a test
image still; a mismatch removes the output and raises.

Everything is checked before the first file is written: a missing capture folder,
nothing labelled, a label that is not a class of the folder merged with or cannot be a
folder name, an output folder that is not empty.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

from artifact import captures as fmt
from artifact.captures import CaptureError

from training.data.folders import SPLIT_NAMES, FolderError, hash_split, scan_folder

PREFIX = "capture-"      # keeps a capture's file name apart from the existing images'


def labelled(capture_dir) -> tuple:
    """([(entry, label)] for every labelled capture whose image is on disk, counts of the rest)."""
    directory = fmt.require_dir(capture_dir)
    latest = {e["request_id"]: e for e in fmt.read_index(directory)}      # the last entry of an id counts
    found, skipped = [], {"label_without_capture": 0, "image_missing": 0}
    for request_id, label in sorted(fmt.read_labels(directory).items()):
        entry = latest.get(request_id)
        if entry is None:
            skipped["label_without_capture"] += 1
        elif not isinstance(entry.get("file"), str) or not (directory / entry["file"]).is_file():
            skipped["image_missing"] += 1       # dropped by the budget since it was labelled
        else:
            found.append((entry, label))
    if not found:
        raise CaptureError(f"no labelled captures in '{directory}' ({len(latest)} captured): attach labels with "
                           "POST /v1/feedback or python -m training feedback first")
    return found, skipped


def _check_folder_name(label: str) -> None:
    if "/" in label or "\\" in label or label.startswith(".") or label.lower() in SPLIT_NAMES or not label.strip():
        raise CaptureError(f"label {label!r} cannot be a class folder's name (no '/', no leading '.', not a split "
                           "name such as train or test)")


def _empty_output(out: Path, merge_with: Optional[Path]) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CaptureError(f"output folder '{out}' exists and is not empty; name a new folder")
    if merge_with is not None and (out.resolve() == merge_with.resolve() or merge_with.resolve() in out.resolve().parents):
        raise CaptureError(f"output folder '{out}' must not be inside the folder merged with ('{merge_with}')")


def _target(index, label: str, name: str, test_fraction: float, val_fraction: float) -> Path:
    """Where a capture goes, relative to the output: its class folder (in a split folder when pre-split)."""
    if not index or not index.presplit:
        return Path(label) / name
    split_dirs = {SPLIT_NAMES[d.name.lower()]: d.name for d in index.root.iterdir()
                  if d.is_dir() and d.name.lower() in SPLIT_NAMES}
    split = hash_split(f"{label}/{name}", test_fraction, val_fraction)
    return Path(split_dirs.get(split, split_dirs["train"])) / label / name


def export(capture_dir, out, merge_with=None, test_fraction: float = 0.1, val_fraction: float = 0.1) -> dict:
    """Write the labelled captures (and a copy of ``merge_with``) into ``out``; returns the report."""
    found, skipped = labelled(capture_dir)
    out = Path(out)
    base = Path(merge_with) if merge_with else None
    index = None
    if base is not None:
        try:
            index = scan_folder(base, test_fraction, val_fraction)
        except FolderError as exc:
            raise CaptureError(f"--merge-with: {exc}") from None
    for _, label in found:
        _check_folder_name(label)
        if index is not None and label not in index.class_names:
            raise CaptureError(f"label {label!r} is not a class of '{base}' ({', '.join(index.class_names)}); "
                               "a new class means retraining with --from-scratch on a folder that has it")
    _empty_output(out, base)

    out.mkdir(parents=True, exist_ok=True)
    try:
        old_test = _copy_existing(index, out)
        added, present = 0, 0
        directory = Path(capture_dir)
        for entry, label in found:
            target = out / _target(index, label, PREFIX + Path(entry["file"]).name, test_fraction, val_fraction)
            if target.exists():          # merged with a folder an earlier export made: already there
                present += 1
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(directory / entry["file"], target)
            added += 1
        result = scan_folder(out, test_fraction, val_fraction)
        split_of = {f.path.relative_to(out).as_posix(): f.split for f in result.files}
        moved = sorted(path for path in old_test if split_of.get(path) != "test")
        if moved:
            raise RuntimeError(f"{len(moved)} old test images are no longer in the test split, e.g. {moved[0]}")
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    counts = result.counts()
    new_keys = {path for path in split_of if Path(path).name.startswith(PREFIX)}
    return {"out": str(out), "merged_with": str(base) if base else None, "classes": result.class_names,
            "layout": "pre-split" if result.presplit else "hash split",
            "captures_added": added, "captures_already_present": present, "skipped": skipped,
            "old_images": len(result.files) - len(new_keys), "old_test_images_still_test": len(old_test),
            "new_in_test": sum(split_of[k] == "test" for k in new_keys),
            "split_sizes": {s: sum(c.values()) for s, c in counts.items()}}


def _copy_existing(index, out: Path) -> set:
    """Copy every file of the folder merged with to the same relative path (so the same
    split key); returns the relative paths of its test images."""
    if index is None:
        return set()
    for f in index.files:
        target = out / f.path.relative_to(index.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f.path, target)
    return {f.path.relative_to(index.root).as_posix() for f in index.files if f.split == "test"}


def feedback(capture_dir, models_dir, request_id: str, label: str) -> dict:
    """``python -m training feedback``: the same as ``POST /v1/feedback``, from a shell."""
    directory = fmt.require_dir(capture_dir)
    try:
        return fmt.attach_label(directory, models_dir, request_id, label)
    except KeyError:
        raise CaptureError(f"request {request_id!r} was not captured in '{directory}'") from None
