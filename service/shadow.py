"""Shadow mode: the canary answers a copy of stable's traffic, and only the agreement is kept.

When the labels give the canary ``shadow: true``, every request that pins nothing is
answered by stable as usual; its good images are then handed to a background thread
that runs them through the canary and counts, per image, whether both versions chose
the same top-1 class (``service_shadow_comparisons_total``). The copy never changes or
delays the response: it runs after the answer is computed, on its own thread, and
when ``SERVICE_SHADOW_MAX_PENDING`` copies are already waiting the new one is dropped
(``service_shadow_dropped_total{reason="busy"}``) rather than queued without bound.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .metrics import Metrics
from .registry import LoadedVersion

log = logging.getLogger("service")


class Shadow:
    def __init__(self, metrics: Metrics, max_pending: int, timeout_s: float):
        self._metrics = metrics
        self._slots = threading.BoundedSemaphore(max_pending)
        self._timeout_s = timeout_s
        self._executor: ThreadPoolExecutor | None = None   # made in the worker, after fork
        self._lock = threading.Lock()

    def submit(self, stable: LoadedVersion, canary: LoadedVersion, pixels: np.ndarray,
               answers: np.ndarray) -> None:
        """Compare ``canary`` with stable's ``answers`` [n, classes] for ``pixels`` [n, ...], later."""
        if not self._slots.acquire(blocking=False):
            self._metrics.shadow_dropped.labels(canary.name, str(canary.version), "busy").inc()
            return
        with self._lock:
            if self._executor is None:
                # One thread: shadow copies take at most one request thread's worth of CPU.
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="shadow")
        try:
            self._executor.submit(self._compare, stable, canary, pixels, answers)
        except RuntimeError:           # shutting down
            self._slots.release()

    def _compare(self, stable: LoadedVersion, canary: LoadedVersion, pixels: np.ndarray,
                 answers: np.ndarray) -> None:
        try:
            out = canary.predict(pixels, time.monotonic() + self._timeout_s)
            agree = int((out.argmax(axis=1) == answers.argmax(axis=1)).sum())
            series = (canary.name, str(stable.version), str(canary.version))
            if agree:
                self._metrics.shadow.labels(*series, "true").inc(agree)
            if len(out) - agree:
                self._metrics.shadow.labels(*series, "false").inc(len(out) - agree)
        except Exception as exc:   # the canary's failure is data, never the client's problem
            self._metrics.shadow_dropped.labels(canary.name, str(canary.version), "error").inc()
            log.warning("shadow copy failed", extra={"event": "shadow_error", "model": canary.name,
                                                     "version": canary.version, "error": repr(exc)})
        finally:
            self._slots.release()
