"""Prometheus text exposition (format 0.0.4), written by hand.

Counts requests by route template and status, a latency histogram, model
batch sizes, model loads, and which backend/device serves each version.
Numbers are per worker process: with several gunicorn workers a scrape sees
one of them (the ``pid`` label of ``service_info`` says which).
"""
from __future__ import annotations

import os
import threading
from collections import defaultdict

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class _Histogram:
    def __init__(self, buckets):
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str, labels: str) -> list[str]:
        sep = "," if labels else ""
        out = [f'{name}_bucket{{{labels}{sep}le="{_num(b)}"}} {c}' for b, c in zip(self.buckets, self.counts)]
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.count}')
        out.append(f"{name}_sum{{{labels}}} {_num(self.sum)}")
        out.append(f"{name}_count{{{labels}}} {self.count}")
        return out


def _num(value: float) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def _esc(value) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**kv) -> str:
    return ",".join(f'{k}="{_esc(v)}"' for k, v in kv.items())


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self._requests: dict[tuple, int] = defaultdict(int)
        self._latency: dict[str, _Histogram] = {}
        self._batches: dict[tuple, _Histogram] = {}
        self._loads: dict[tuple, int] = defaultdict(int)
        self._backends: dict[tuple, tuple[str, str]] = {}

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(route, method, str(status))] += 1
            self._latency.setdefault(route, _Histogram(LATENCY_BUCKETS)).observe(seconds)

    def batch(self, model: str, version: int, size: int) -> None:
        with self._lock:
            self._batches.setdefault((model, str(version)), _Histogram(BATCH_BUCKETS)).observe(size)

    def model_load(self, model: str, result: str) -> None:
        with self._lock:
            self._loads[(model, result)] += 1

    def set_backend(self, model: str, version: int, backend: str, device: str, serving: bool) -> None:
        with self._lock:
            if serving:
                self._backends[(model, str(version))] = (backend, device)
            else:
                self._backends.pop((model, str(version)), None)

    def render(self, ready: bool, queue_depth: int) -> str:
        lines = [
            "# HELP service_info Process serving this scrape.", "# TYPE service_info gauge",
            f"service_info{{{_labels(pid=os.getpid())}}} 1",
            "# HELP service_ready 1 when every model has a version available.", "# TYPE service_ready gauge",
            f"service_ready {int(ready)}",
            "# HELP service_queue_depth Requests waiting for a batch.", "# TYPE service_queue_depth gauge",
            f"service_queue_depth {queue_depth}",
        ]
        with self._lock:
            lines += ["# HELP service_requests_total HTTP requests by route template and status.",
                      "# TYPE service_requests_total counter"]
            for (route, method, status), n in sorted(self._requests.items()):
                lines.append(f"service_requests_total{{{_labels(route=route, method=method, status=status)}}} {n}")
            lines += ["# HELP service_request_duration_seconds Request latency.",
                      "# TYPE service_request_duration_seconds histogram"]
            for route, hist in sorted(self._latency.items()):
                lines += hist.lines("service_request_duration_seconds", _labels(route=route))
            lines += ["# HELP service_batch_size Images per model call.", "# TYPE service_batch_size histogram"]
            for (model, version), hist in sorted(self._batches.items()):
                lines += hist.lines("service_batch_size", _labels(model=model, version=version))
            lines += ["# HELP service_model_loads_total Model version loads by result.",
                      "# TYPE service_model_loads_total counter"]
            for (model, result), n in sorted(self._loads.items()):
                lines.append(f"service_model_loads_total{{{_labels(model=model, result=result)}}} {n}")
            lines += ["# HELP service_model_backend Backend and device serving each model version.",
                      "# TYPE service_model_backend gauge"]
            for (model, version), (backend, device) in sorted(self._backends.items()):
                lines.append("service_model_backend{%s} 1" % _labels(
                    model=model, version=version, backend=backend, device=device))
        return "\n".join(lines) + "\n"
