"""The model repository on disk, ``<models_dir>/<name>/<integer version>/``, and
atomic publishing into it.

A version is written into a hidden staging directory beside the versions and
renamed to the next integer only when complete, so a reader never sees a
half-written version: hidden names (leading ".") and non-integer names are
never listed, and a crash leaves only a dot-directory behind.

A version taken out of service is moved, by one ``os.rename``, into the hidden
``.retired/`` folder beside the versions: the service stops seeing it and falls
back to the previous version, and ``restore`` moves it back. Nothing is
deleted, and a version number is never given out twice.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

from . import metadata as md

RETIRED = ".retired"
HISTORY = "history.jsonl"   # in .retired/: one line per retire or restore
STAGING_PREFIX = ".tmp-"


class RepositoryError(ValueError):
    """The repository cannot do what was asked (no such version, nothing left to serve...)."""


def _visible(path: Path) -> bool:
    return path.is_dir() and not path.name.startswith(".")


def _numbered(model_dir: Path) -> list:
    """Every integer-named directory: the numbers already taken."""
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if _visible(p) and p.name.isdigit())


def _taken(model_dir: Path) -> int:
    """The highest number ever given out, published or retired (0 if none)."""
    return max([*_numbered(model_dir), *_numbered(model_dir / RETIRED)], default=0)


def versions(models_dir, name: str) -> list:
    """The published versions of ``name``, ascending (those holding a metadata.json)."""
    model_dir = Path(models_dir) / name
    return [v for v in _numbered(model_dir) if (model_dir / str(v) / md.FILENAME).is_file()]


def scan(models_dir) -> dict:
    """Model name -> its published versions, for every model under ``models_dir``."""
    root = Path(models_dir)
    if not root.is_dir():
        return {}
    return {p.name: versions(root, p.name) for p in sorted(root.iterdir()) if _visible(p)}


def latest_version(models_dir, name: str) -> Path:
    found = versions(models_dir, name)
    if not found:
        raise FileNotFoundError(f"no published version of '{name}' under {models_dir}")
    return Path(models_dir) / name / str(found[-1])


def staging_dir(models_dir, name: str) -> Path:
    """A fresh hidden directory beside the versions (readers skip names starting with '.')."""
    parent = Path(models_dir) / name
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=parent))


def clean_staging(models_dir, name: str, min_age_s: float = 2.0) -> list:
    """Remove staging dirs left by killed publishers; returns what was removed.

    A publisher holds an flock on its staging dir while it writes, and the
    kernel drops it when the process dies, so a dir whose lock can be taken
    has no live writer. ``min_age_s`` spares a dir created a moment ago whose
    writer has not locked it yet (two system calls later).
    """
    model_dir = Path(models_dir) / name
    removed = []
    candidates = sorted(model_dir.glob(STAGING_PREFIX + "*")) if model_dir.is_dir() else []
    for path in candidates:
        try:
            if time.time() - path.stat().st_mtime < min_age_s:
                continue
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue
        else:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        finally:
            os.close(fd)
    return removed


def publish(models_dir, name: str, write: Callable[[Path], "md.Metadata"], attempts: int = 20) -> Path:
    """Call ``write(staging)`` to fill a staging dir and return its ``Metadata``, then
    rename the dir to the next free version. Returns the published directory."""
    staging = staging_dir(models_dir, name)
    writing = os.open(staging, os.O_RDONLY)
    fcntl.flock(writing, fcntl.LOCK_EX)   # "a live writer": see clean_staging
    try:
        metadata = write(staging)
        if not isinstance(metadata, md.Metadata) or metadata.name != name:
            raise md.MetadataError(f"publishing '{name}': the writer must return its Metadata with "
                                   f"name '{name}', got {getattr(metadata, 'name', metadata)!r}")
        os.chmod(staging, 0o755)   # mkdtemp makes it private; readers may be another user
        for _ in range(attempts):
            version = _taken(Path(models_dir) / name) + 1
            metadata.version = version
            md.write(staging, metadata)
            target = Path(models_dir) / name / str(version)
            try:
                # rename() onto an existing non-empty directory fails, so two
                # concurrent publishers can never share a version number.
                os.rename(staging, target)
                return target
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
        raise RuntimeError(f"could not claim a version for '{name}' after {attempts} attempts")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        os.close(writing)


def retired(models_dir, name: str) -> list:
    """The retired versions of ``name``, ascending."""
    return _numbered(Path(models_dir) / name / RETIRED)


def history(models_dir, name: str) -> list:
    """Every retire and restore of ``name``, oldest first."""
    path = Path(models_dir) / name / RETIRED / HISTORY
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _record(model_dir: Path, action: str, version: int, reason: str) -> None:
    entry = {"action": action, "version": version, "at": md.utc_now(), "pid": os.getpid(), "reason": reason}
    with open(model_dir / RETIRED / HISTORY, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


def retire(models_dir, name: str, version: Optional[int] = None, reason: str = "") -> Path:
    """Move ``version`` (default: the newest) out of the served set into ``.retired/``.

    Refuses to retire the only published version: the model would vanish from
    the service. Returns where the version now lives.
    """
    model_dir = Path(models_dir) / name
    published = versions(models_dir, name)
    if version is None:
        if not published:
            raise RepositoryError(f"model '{name}' has no published version under {models_dir}")
        version = published[-1]
    if version not in published:
        raise RepositoryError(f"model '{name}' has no published version {version} "
                              f"(published: {published or 'none'})")
    if published == [version]:
        raise RepositoryError(f"version {version} is the only published version of '{name}'; retiring it "
                              "would leave the service nothing to serve")
    (model_dir / RETIRED).mkdir(exist_ok=True)
    target = model_dir / RETIRED / str(version)
    os.rename(model_dir / str(version), target)   # one step: served before, gone after
    _record(model_dir, "retire", version, reason)
    return target


def restore(models_dir, name: str, version: int, reason: str = "") -> Path:
    """Move a retired version back into the served set; returns its directory."""
    model_dir = Path(models_dir) / name
    found = retired(models_dir, name)
    if version not in found:
        raise RepositoryError(f"model '{name}' has no retired version {version} (retired: {found or 'none'})")
    target = model_dir / str(version)
    if target.exists():
        raise RepositoryError(f"{target} exists; move it away before restoring version {version}")
    os.rename(model_dir / RETIRED / str(version), target)
    _record(model_dir, "restore", version, reason)
    return target
