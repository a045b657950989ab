"""Timing one model call in-process, shared by the benchmarks: the median latency of a call and
the images per second of repeated calls, each after warm-up calls (first-call paths, caches)."""
import time

import numpy as np


def p50_ms(model, x: np.ndarray, calls: int, warmup: int = 20) -> float:
    """Median wall time of ``model.predict(x)`` over ``calls`` calls, in ms."""
    for _ in range(warmup):
        model.predict(x)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        model.predict(x)
        times.append(time.perf_counter() - started)
    return float(np.median(times)) * 1000


def images_per_s(model, x: np.ndarray, seconds: float, warmup: int = 20, max_calls: int = 1_000_000) -> float:
    """Images per second of back-to-back ``model.predict(x)`` calls for about ``seconds``."""
    for _ in range(warmup):
        model.predict(x)
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds and calls < max_calls:
        model.predict(x)
        calls += 1
    return calls * len(x) / (time.perf_counter() - started)
