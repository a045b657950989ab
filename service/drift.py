"""Prediction drift of the served versions: a sliding window of what each version answered,
tested against the reference it recorded at publish (``artifact/drift.py``).

On the request path a version's answers only go into a ring buffer (their predicted class
and top-1 probability, two numpy slices under a lock). The test runs every ``every``
images (a twentieth of the window), on whichever request thread crosses that count,
and sets three gauges per version (``service/metrics.py``): ``service_drift_p_value``,
``service_drift_statistic`` (one per test: chi2 and ks) and ``service_drift_window_images``.
A version without a ``drift_reference`` block (published before it existed) has no window
and exports no drift gauges.

Gunicorn workers each keep their own window of their own share of the traffic (connections
are spread over workers, so each window is a sample of the same stream). Under gunicorn a
scrape shows, per version, the smallest p-value of the live workers, multiplied by the
number of workers (Bonferroni over workers), so that ``p < alpha`` keeps its false-alarm
rate of at most alpha whatever the worker count; the statistics are the largest, the
window the smallest. docs/service.md "Drift" has the measured alarm rates.
"""
from __future__ import annotations

import logging
import threading

import numpy as np

from artifact import drift

from .metrics import Metrics, multiprocess_dir

log = logging.getLogger("service")


class Window:
    """The last ``size`` answers of one version, and its reference."""

    def __init__(self, reference: drift.Reference, size: int):
        self.reference = reference
        self.size = size
        self.every = max(1, size // 20)
        self.predicted = np.zeros(size, np.int64)
        self.confidence = np.zeros(size, np.float64)
        self.filled = 0          # images held (<= size)
        self.seen = 0            # images ever added; the next write goes to seen % size
        self.tested_at = 0       # `seen` when the test last ran
        self.lock = threading.Lock()

    def add(self, rows: np.ndarray) -> bool:
        """Append answered rows; True when the test is due."""
        predicted, confidence = rows.argmax(1), rows.max(1)
        n = len(predicted)
        if n > self.size:
            predicted, confidence = predicted[-self.size:], confidence[-self.size:]
        with self.lock:
            # row i of the n goes to (seen + i) % size; of more than a window only the last rows are kept
            idx = (self.seen + n - len(predicted) + np.arange(len(predicted))) % self.size
            self.predicted[idx] = predicted
            self.confidence[idx] = confidence
            self.seen += n
            self.filled = min(self.size, self.filled + n)
            due = self.filled >= drift.MIN_IMAGES and self.seen - self.tested_at >= self.every
            if due:
                self.tested_at = self.seen
            return due

    def result(self) -> drift.Result:
        with self.lock:
            predicted = self.predicted[:self.filled].copy()
            confidence = self.confidence[:self.filled].copy()
        return drift.compare(self.reference, predicted, confidence)


class DriftMonitor:
    """Windows per served version, keyed by (model, version); fed by ``observe``."""

    def __init__(self, metrics: Metrics, window: int, workers: int = 1):
        self.metrics = metrics
        self.window = window
        # Bonferroni over workers only where their gauges are merged into one series
        self.workers = workers if multiprocess_dir() is not None else 1
        self._windows: dict[tuple, tuple] = {}     # (model, version) -> (VersionInfo, Window or None)
        self._lock = threading.Lock()

    def _window_of(self, lv) -> Window | None:
        key = (lv.name, lv.version)
        held = self._windows.get(key)
        if held is not None and held[0] is lv.info:
            return held[1]
        with self._lock:             # first answer of a (re)loaded version: one window, made once
            held = self._windows.get(key)
            if held is None or held[0] is not lv.info:
                reference = lv.info.metadata.drift_reference   # validated when the metadata was read
                window = Window(reference, self.window) if reference is not None and self.window > 0 else None
                held = self._windows[key] = (lv.info, window)
        return held[1]

    def observe(self, lv, rows: np.ndarray) -> None:
        """A version's answered rows (probabilities); cheap unless a test is due."""
        window = self._window_of(lv)
        if window is None or rows.ndim != 2 or len(rows) == 0:
            return
        if window.add(rows):
            self._publish(lv, window)

    def _publish(self, lv, window: Window) -> None:
        try:
            result = window.result()
        except ValueError:     # a model whose rows do not match its labels: the load check catches it
            log.exception("drift test failed", extra={"model": lv.name, "version": lv.version})
            return
        p_value = min(1.0, result.p_value * self.workers)
        self.metrics.drift(lv.name, lv.version, p_value, result.chi2, result.ks, result.images)
