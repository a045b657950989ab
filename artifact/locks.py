"""One writer job per model: an advisory lock on ``<models_dir>/<name>/.lock``.

``fcntl.flock`` belongs to the open file, so the kernel drops it when the
holder exits however it exits (SIGKILL, OOM, a crash): a killed job never
leaves a stale lock behind. The file itself is kept (unlinking a lock file
races with a process that has just opened it) and holds a JSON line naming
the current holder, so a refused job can say who to wait for.

The lock is a convention between jobs that change a model's versions
(retrain, rollback, restore); readers (the service) never take it.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from .metadata import utc_now

LOCK_NAME = ".lock"   # hidden: never listed as a version
POLL_S = 0.2


class LockBusy(RuntimeError):
    """Another job holds the model's lock; the message names it."""


def lock_path(models_dir, name: str) -> Path:
    return Path(models_dir) / name / LOCK_NAME


def holder(models_dir, name: str) -> Optional[dict]:
    """What the current holder wrote into the lock file (None if unreadable or free)."""
    try:
        text = lock_path(models_dir, name).read_text(encoding="utf-8").strip()
        return json.loads(text) if text else None
    except (OSError, ValueError):
        return None


def _busy_message(models_dir, name: str, waited: float) -> str:
    info = holder(models_dir, name) or {}
    who = (f"pid {info.get('pid', '?')} on {info.get('host', '?')} ({info.get('job', 'a job')}, "
           f"since {info.get('since', '?')})")
    waited_text = f" after waiting {waited:.0f} s" if waited else ""
    return (f"model '{name}' is locked by {who}{waited_text}; wait for it (--wait SECONDS), or stop that "
            f"process: killing it is safe, it leaves no partial version and releases the lock")


@contextmanager
def model_lock(models_dir, name: str, job: str, wait: Optional[float] = 0.0):
    """Hold ``name``'s lock for the ``with`` block.

    ``wait``: seconds to wait for a busy lock (0: fail at once, None: forever);
    a lock still busy then raises ``LockBusy`` naming the holder's pid.
    """
    path = lock_path(models_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        start = time.monotonic()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - start
                if wait is not None and waited >= wait:
                    raise LockBusy(_busy_message(models_dir, name, waited)) from None
                time.sleep(POLL_S)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "job": job, "since": utc_now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
        try:
            yield record
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)   # releases the flock if it was taken
