"""The model repository on disk, ``<models_dir>/<name>/<integer version>/``, and
atomic publishing into it.

A version is written into a hidden staging directory beside the versions and
renamed to the next integer only when complete, so a reader never sees a
half-written version: hidden names (leading ".") and non-integer names are
never listed, and a crash leaves only a dot-directory behind.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from . import metadata as md


def _visible(path: Path) -> bool:
    return path.is_dir() and not path.name.startswith(".")


def _numbered(model_dir: Path) -> list:
    """Every integer-named directory: the numbers already taken."""
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if _visible(p) and p.name.isdigit())


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
    return Path(tempfile.mkdtemp(prefix=".tmp-", dir=parent))


def publish(models_dir, name: str, write: Callable[[Path], "md.Metadata"], attempts: int = 20) -> Path:
    """Call ``write(staging)`` to fill a staging dir and return its ``Metadata``, then
    rename the dir to the next free version. Returns the published directory."""
    staging = staging_dir(models_dir, name)
    try:
        metadata = write(staging)
        if not isinstance(metadata, md.Metadata) or metadata.name != name:
            raise md.MetadataError(f"publishing '{name}': the writer must return its Metadata with "
                                   f"name '{name}', got {getattr(metadata, 'name', metadata)!r}")
        os.chmod(staging, 0o755)   # mkdtemp makes it private; readers may be another user
        for _ in range(attempts):
            version = (_numbered(Path(models_dir) / name) or [0])[-1] + 1
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
