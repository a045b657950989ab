"""Atomic publishing into the model repository ``<models_dir>/<name>/<integer version>/``.

Everything is written into a hidden staging directory beside the versions and
renamed to the next integer only when complete, so a reader (the service's
watcher) never sees a half-written version; a crash leaves only a dot-directory.
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Callable

from .export import staging_dir, write_metadata


def versions(models_dir, name: str) -> list:
    parent = Path(models_dir) / name
    if not parent.is_dir():
        return []
    return sorted(int(p.name) for p in parent.iterdir() if p.is_dir() and p.name.isdigit())


def latest_version(models_dir, name: str) -> Path:
    found = versions(models_dir, name)
    if not found:
        raise FileNotFoundError(f"no published version of '{name}' under {models_dir}")
    return Path(models_dir) / name / str(found[-1])


def publish(models_dir, name: str, write: Callable[[Path], dict], attempts: int = 20) -> Path:
    """Call ``write(staging)`` to fill a staging dir (it returns the metadata), then
    rename it to the next free version. Returns the published directory."""
    staging = staging_dir(models_dir, name)
    try:
        metadata = write(staging)
        os.chmod(staging, 0o755)   # mkdtemp makes it private; readers may be another user
        for _ in range(attempts):
            version = (versions(models_dir, name) or [0])[-1] + 1
            metadata["version"] = version
            write_metadata(staging, metadata)
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
