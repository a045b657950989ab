"""What a command prints besides its result, and what it keeps for a crash.

At the default level the terminal shows the program's own INFO lines and every
library's warnings; other libraries' INFO lines (absl writes one per epoch) only
with ``-v``. Every record at any level is also kept in memory, so an unexpected
error can be written to a log file, with its traceback and TensorFlow's start-up
lines, instead of filling the terminal.
"""
from __future__ import annotations

import logging
import sys
import tempfile
import time
import traceback
from pathlib import Path

FORMAT = "%(levelname)s %(name)s: %(message)s"
KEPT_RECORDS = 5000          # the newest records a crash log holds


class Terminal(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (a test may swap it)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


class Recorder(logging.Handler):
    """Keeps the newest records, formatted, for a crash log."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(asctime)s " + FORMAT))
        self.lines: list = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        del self.lines[:-KEPT_RECORDS]


def configure(verbose: bool) -> Recorder:
    """Terminal handler (own INFO, others' WARNING; everything with ``verbose``) and the recorder."""
    release()
    root = logging.getLogger()
    terminal = Terminal()
    terminal.setFormatter(logging.Formatter(FORMAT))
    if not verbose:
        terminal.addFilter(lambda r: r.name.split(".")[0] == "training" or r.levelno >= logging.WARNING)
    recorder = Recorder()
    terminal.training_cli = recorder.training_cli = True
    root.addHandler(terminal)
    root.addHandler(recorder)
    root.setLevel(logging.INFO)
    return recorder


def release() -> None:
    """Take this module's handlers off the root logger (a command run inside another
    program, such as a test, leaves its logging as it found it)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "training_cli", False)]:
        root.removeHandler(handler)


def write_crash_log(command: str, recorder: Recorder, startup: str = "") -> Path:
    """The traceback being handled, the kept records and the native libraries' lines, in a
    new file under the temporary directory; returns its path."""
    directory = Path(tempfile.gettempdir()) / "training-logs"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{time.strftime('%Y%m%d-%H%M%S')}-{command}-{id(recorder):x}.log"
    parts = [f"python -m training {' '.join(sys.argv[1:])}", "", traceback.format_exc(), "log:", *recorder.lines]
    if startup:
        parts += ["", "native libraries (TensorFlow, LiteRT) wrote:", startup]
    path.write_text("\n".join(parts) + "\n")
    return path
