"""The study records on disk: one JSON line per finished run, flushed and fsynced as it is
written, a line torn by a crash skipped on reading and cut before the next append. The runner
and studies with files of their own (the distillation pilot) share these.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def machine() -> str:
    """The CPU model and core count, for the records (where a run ran) and the report."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def read_records(path: Path) -> list:
    """Every complete record; a torn line (a crash while writing) is skipped with a warning."""
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("%s line %d is not a whole record (a run interrupted while writing?): ignored",
                        path, number)
    return records


def drop_torn_tail(path: Path) -> None:
    """Cut an unterminated last line, so the next record starts on a line of its own."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def append_record(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())
