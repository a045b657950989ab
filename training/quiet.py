"""Native libraries' start-up lines, kept off the terminal.

TensorFlow and LiteRT write notes from C++ straight to file descriptor 2 (oneDNN,
CUDA probing that reads like a failure on a CPU-only machine, "Created TensorFlow Lite
XNNPACK delegate"), before or beside any Python logging, where no logger setting
reaches them. ``captured_stderr`` points fd 2 at a temporary file for the duration
and keeps what was written in ``CAPTURED``; ``python -m training -v`` prints it (see
``training.cli.main``), a crash log includes it.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile

CAPTURED: list = []                                   # text captured so far, in order
SHOW = "TRAINING_SHOW_NATIVE_LOGS"                    # set by python -m training -v: print instead of keeping


@contextlib.contextmanager
def captured_stderr():
    """Run the block with fd 2 captured (printed through at once when ``SHOW`` is set)."""
    if os.environ.get(SHOW):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            CAPTURED.append(sink.read().decode(errors="replace"))
