"""Prometheus metrics with ``prometheus-client``, one scrape for all workers.

Under gunicorn, ``gunicorn.conf.py`` points ``PROMETHEUS_MULTIPROC_DIR`` at a
fresh directory before anything imports prometheus_client: every worker
then writes its values to files there, a scrape of any worker adds up all
of them, and counters of a worker that exited stay counted (gauges of dead
workers are dropped by the ``child_exit`` hook). Without that variable (an
app made in a test or a script) each ``Metrics`` keeps its own registry.

Labels: requests by model, version, endpoint (route template), method and
status; queue, inference and total latency; batch sizes; model loads and
their seconds; backend and device wherever a model call is measured. Every
series of an answered request carries its ``version``, so a canary is compared
with stable in one query (docs/service.md, "Labels: stable and canary").

The per-request updates (the request counter and duration, queue wait, model
call time, batch size, confidence, the not-sure and unfamiliar counts and the
queue-depth gauge) are deferred: a request thread appends them to a deque
(``Pending``), and a flush adds them up and writes each touched series once
(one locked file write per series and bucket, not per observation) every
``metrics_flush_s`` seconds, at every ``/metrics`` scrape (``render``) and when
the worker exits. A scrape answered by one worker therefore shows the other
workers' requests of the last ``metrics_flush_s`` a moment later.
"""
from __future__ import annotations

import atexit
import bisect
import collections
import logging
import os
import threading
import weakref

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
LOAD_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0, 120.0)
MODEL = ("model", "version", "backend", "device")


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


COUNT, OBSERVE, SET = 0, 1, 2


class Pending:
    """Metric updates made on request threads, written into the prometheus_client series
    by ``flush``: counts summed, observations counted per bucket, a gauge's last value.

    ``deque.append`` and ``popleft`` are atomic, so request threads take no lock; a flush
    holds its own lock (one flush at a time). A background thread flushes every
    ``interval`` seconds (started with the first update, again in a forked child); with
    ``interval`` 0 every update is written at once, by the thread that made it."""

    def __init__(self, interval: float):
        self.interval = interval
        self._events: collections.deque = collections.deque()
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        _ALL.add(self)

    def add(self, kind: int, series, value) -> None:
        self._events.append((kind, series, value))
        if self._thread is None:
            if self.interval > 0:
                self._start()
            else:
                self.flush()

    def _start(self) -> None:
        with self._flush_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="metrics-flush", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._wake.wait(self.interval):
            try:
                self.flush()
            except Exception:  # one failed write (a full disk) must not end the flushing
                logging.getLogger("service").exception("metrics flush failed",
                                                       extra={"event": "metrics_flush_failed"})

    def after_fork(self) -> None:
        self._thread = None
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()

    def flush(self) -> None:
        with self._flush_lock:
            counts: dict = {}
            observed: dict = {}
            gauges: dict = {}
            pop = self._events.popleft
            while True:
                try:
                    kind, series, value = pop()
                except IndexError:
                    break
                if kind == OBSERVE:
                    entry = observed.get(series)
                    if entry is None:
                        entry = observed[series] = [[0] * len(series._upper_bounds), 0.0]
                    if value == value:  # NaN: no bucket, as observe() (but in the sum)
                        entry[0][bisect.bisect_left(series._upper_bounds, value)] += 1
                    entry[1] += value
                elif kind == COUNT:
                    counts[series] = counts.get(series, 0) + value
                else:
                    gauges[series] = value
            for series, n in counts.items():
                series.inc(n)
            for series, (buckets, total) in observed.items():
                _add_observations(series, buckets, total)
            for series, value in gauges.items():
                series.set(value)


def _add_observations(histogram, buckets: list[int], total: float) -> None:
    """What ``Histogram.observe`` would have written for these observations: each bucket
    (stored per bucket, cumulated at exposition; +Inf is the last) and the sum."""
    histogram._sum.inc(total)
    for i, n in enumerate(buckets):
        if n:
            histogram._buckets[i].inc(n)


_ALL: "weakref.WeakSet[Pending]" = weakref.WeakSet()


def flush_all() -> None:
    """Every ``Pending`` of this process (the worker-exit hook, interpreter exit)."""
    for pending in list(_ALL):
        pending.flush()


atexit.register(flush_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: [p.after_fork() for p in list(_ALL)])


class VersionMetrics:
    """The batcher's observer for one served version (label lookups done once)."""

    def __init__(self, metrics: "Metrics", model: str, version: int, backend: str, device: str):
        labels = (model, str(version), backend, device)
        self._add = metrics.pending.add
        self._depth = metrics.queue_depth.labels(model, str(version))
        self._queued = metrics.queue_seconds.labels(*labels)
        self._inference = metrics.inference_seconds.labels(*labels)
        self._batch = metrics.batch_size.labels(*labels)
        self._confidence = metrics.confidence.labels(model, str(version))
        self._not_sure = metrics.not_sure.labels(model, str(version))
        self._unfamiliar = metrics.unfamiliar.labels(model, str(version))

    def depth(self, jobs: int) -> None:
        self._add(SET, self._depth, jobs)

    def ran(self, rows: int, seconds: float, waited: list[float]) -> None:
        add = self._add
        add(OBSERVE, self._batch, rows)
        add(OBSERVE, self._inference, seconds)
        for wait in waited:
            add(OBSERVE, self._queued, wait)

    def answered(self, rows: np.ndarray) -> None:
        """Top-1 probability of each answered image (a version that grows unsure shows here)."""
        for p in rows.max(axis=1).tolist() if rows.ndim == 2 and rows.shape[1] else ():
            self._add(OBSERVE, self._confidence, p)

    def not_sure(self, n: int) -> None:
        """Answers withheld below min_confidence (service/confidence.py)."""
        self._add(COUNT, self._not_sure, n)

    def unfamiliar(self, n: int) -> None:
        """Answers withheld above max_energy (service/energy.py)."""
        self._add(COUNT, self._unfamiliar, n)


class Metrics:
    def __init__(self, flush_s: float = 0.5):
        # Per-request updates wait here for the next flush (see the module docstring).
        self.pending = Pending(flush_s)
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "service_requests", "HTTP requests by model, version, endpoint (route template) and status.",
            ("model", "version", "endpoint", "method", "status"), registry=r)
        self.request_seconds = Histogram(
            "service_request_duration_seconds", "Total time of a request in the worker.",
            ("model", "version", "endpoint"), buckets=LATENCY_BUCKETS, registry=r)
        self.confidence = Histogram(
            "service_prediction_confidence", "Top-1 probability of each image a version answered "
            "(shadow copies included).", ("model", "version"), buckets=CONFIDENCE_BUCKETS, registry=r)
        self.not_sure = Counter(
            "service_not_sure", "Answers withheld because their top probability was below "
            "min_confidence (label null, probabilities still returned).", ("model", "version"), registry=r)
        self.unfamiliar = Counter(
            "service_unfamiliar", "Answers withheld because their energy was above max_energy: an input "
            "unlike the training images (label null, probabilities still returned).", ("model", "version"),
            registry=r)
        self.shadow = Counter(
            "service_shadow_comparisons", "Images answered by stable and, in shadow mode, by the canary: "
            "agree is whether both gave the same top-1 class.",
            ("model", "stable_version", "canary_version", "agree"), registry=r)
        self.shadow_dropped = Counter(
            "service_shadow_dropped", "Shadow copies not compared: the canary failed (error) or too many "
            "copies were already pending (busy).", ("model", "canary_version", "reason"), registry=r)
        self.captures = Counter(
            "service_captures", "Answered images the capture sample took (captured: written to "
            "SERVICE_CAPTURE_DIR; dropped: the writer's queue was full or the write failed).",
            ("model", "version", "result"), registry=r)
        self.queue_seconds = Histogram(
            "service_queue_seconds", "Time a request's images waited for their model call.",
            MODEL, buckets=LATENCY_BUCKETS, registry=r)
        self.inference_seconds = Histogram(
            "service_inference_seconds", "Time of one model call.", MODEL, buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram(
            "service_batch_size", "Images per model call.", MODEL, buckets=BATCH_BUCKETS, registry=r)
        self.loads = Counter(
            "service_model_loads", "Model version loads by result.",
            ("model", "result", "backend", "device"), registry=r)
        self.load_seconds = Histogram(
            "service_model_load_seconds", "Time to load and warm up a model version.",
            ("model", "backend", "device"), buckets=LOAD_BUCKETS, registry=r)
        self.serving = Gauge(
            "service_model_backend", "1 while a worker serves the version with this backend and device.",
            MODEL, multiprocess_mode="livemax", registry=r)
        self.queue_depth = Gauge(
            "service_queue_depth", "Model calls waiting in the batch queues of live workers.",
            ("model", "version"), multiprocess_mode="livesum", registry=r)
        self.ready = Gauge(
            "service_ready", "1 when every live worker has every model ready.",
            multiprocess_mode="livemin", registry=r)
        self.workers = Gauge(
            "service_workers", "Live worker processes.", multiprocess_mode="livesum", registry=r)
        # Prediction drift (service/drift.py): per served version with a drift reference.
        # Each worker tests its own window; a scrape keeps the most alarming live worker.
        self.drift_p_value = Gauge(
            "service_drift_p_value", "p-value of the drift test of the version's recent answers against "
            "its publish-time reference (chi2 on predicted classes and KS on top-1 probability, Bonferroni; "
            "under gunicorn also over workers). Alarm below 0.01.",
            ("model", "version"), multiprocess_mode="livemin", registry=r)
        self.drift_statistic = Gauge(
            "service_drift_statistic", "Drift test statistics: chi2 (predicted classes vs reference) "
            "and ks (top-1 probability distance to the reference).",
            ("model", "version", "test"), multiprocess_mode="livemax", registry=r)
        self.drift_window = Gauge(
            "service_drift_window_images", "Answers in the drift window the last test ran on.",
            ("model", "version"), multiprocess_mode="livemin", registry=r)
        self.workers.set(1)
        self.ready.set(0)
        # labels() takes the metric's lock on every call; request threads
        # look their series up here instead (a few routes x statuses x models).
        self._request_series: dict[tuple, tuple] = {}

    def request(self, model: str, version: str, endpoint: str, method: str, status: int,
                seconds: float) -> None:
        key = (model, version, endpoint, method, status)
        series = self._request_series.get(key)
        if series is None:
            series = self._request_series[key] = (
                self.requests.labels(model, version, endpoint, method, str(status)),
                self.request_seconds.labels(model, version, endpoint))
        add = self.pending.add
        add(COUNT, series[0], 1)
        add(OBSERVE, series[1], seconds)

    def model_load(self, model: str, result: str, seconds: float, backend: str = "", device: str = "") -> None:
        self.loads.labels(model, result, backend, device).inc()
        if result == "ok":
            self.load_seconds.labels(model, backend, device).observe(seconds)

    def set_serving(self, model: str, version: int, backend: str, device: str, serving: bool) -> None:
        self.serving.labels(model, str(version), backend, device).set(int(serving))

    def drift(self, model: str, version: int, p_value: float, chi2: float, ks: float, images: int) -> None:
        """One drift test's result (service/drift.py); labels() only here, never before a first
        result, so a worker that has not tested yet writes no 0 that livemin would pick."""
        self.drift_p_value.labels(model, str(version)).set(p_value)
        self.drift_statistic.labels(model, str(version), "chi2").set(chi2)
        self.drift_statistic.labels(model, str(version), "ks").set(ks)
        self.drift_window.labels(model, str(version)).set(images)

    def version(self, model: str, version: int, backend: str, device: str) -> VersionMetrics:
        return VersionMetrics(self, model, version, backend, device)

    def flush(self) -> None:
        """Write the deferred per-request updates of this process now."""
        self.pending.flush()

    def render(self) -> bytes:
        self.flush()  # this worker's; the others' within metrics_flush_s
        if multiprocess_dir() is None:
            return generate_latest(self.registry)
        scrape = CollectorRegistry()
        MultiProcessCollector(scrape)
        return generate_latest(scrape)
