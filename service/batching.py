"""Dynamic batching: concurrent requests gathered into one model call.

Each served model version owns one ``Batcher`` and its thread. A request's
images are split into jobs of at most ``max_batch_size`` rows (a request
larger than the model batch runs as several calls and is answered whole).
The thread takes what is waiting, up to ``max_batch_size`` rows, and runs it
at once: a lone request on an idle worker never waits for company, and
while one call runs the next batch gathers by itself. ``max_delay_s`` > 0
adds a wait for more rows (worth it where bigger batches are much cheaper,
as on a GPU). The queue is bounded (429 when full); a job whose deadline
passed before its turn is answered 504 and not run. After ``close()`` the
thread finishes what is queued and stops; late jobs of a retired version
then run inline, so a request always finishes on the version that started it.
"""
from __future__ import annotations

import collections
import threading
import time
from typing import Callable, Protocol

import numpy as np

from .errors import DeadlineExceeded, QueueFull


class BatchObserver(Protocol):
    def depth(self, jobs: int) -> None: ...
    def ran(self, rows: int, seconds: float, waited: list[float]) -> None: ...


class _Job:
    __slots__ = ("pixels", "deadline", "enqueued", "done", "result", "error")

    def __init__(self, pixels: np.ndarray, deadline: float):
        self.pixels = pixels
        self.deadline = deadline
        self.enqueued = time.monotonic()
        self.done = threading.Event()
        self.result = None
        self.error: BaseException | None = None


class Batcher:
    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], max_batch_size: int,
                 max_delay_s: float, max_queue: int, name: str = "batcher"):
        self._predict = predict
        self._max_batch = max_batch_size
        self._max_delay = max_delay_s
        self._max_queue = max_queue
        self.observer: BatchObserver | None = None  # set once warm-up calls are done
        self._queue: collections.deque[_Job] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, pixels: np.ndarray, deadline: float, admit: bool = False) -> np.ndarray:
        """Run ``pixels`` [n,...] through the model; returns its n output rows.

        ``admit`` skips the queue bound (warm-up calls on a fresh version)."""
        jobs = [_Job(pixels[i:i + self._max_batch], deadline)
                for i in range(0, pixels.shape[0], self._max_batch)]
        with self._cond:
            closed = self._closed
            if not closed:
                # A request is admitted whole or not at all: its chunks may
                # take the queue past max_queue, never a half request.
                if len(self._queue) >= self._max_queue and not admit:
                    raise QueueFull(f"queue is full ({self._max_queue} requests waiting); retry later")
                self._queue.extend(jobs)
                self._cond.notify()
                self._report_depth()
        for job in jobs:
            if closed:
                self._run([job])
            elif not job.done.wait(max(0.0, deadline - time.monotonic())):
                # Still queued or running: give up waiting; the thread skips it if queued.
                raise DeadlineExceeded("deadline exceeded while waiting for the model")
            if job.error is not None:
                raise job.error
        return jobs[0].result if len(jobs) == 1 else np.concatenate([j.result for j in jobs])

    def close(self, wait_s: float = 30.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(wait_s)

    def _report_depth(self) -> None:
        if self.observer is not None:
            self.observer.depth(len(self._queue))

    def _rows_waiting(self) -> int:
        return sum(j.pixels.shape[0] for j in self._queue)

    def _take(self) -> list[_Job] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return None  # closed and drained
            if self._max_delay > 0:
                flush_at = self._queue[0].enqueued + self._max_delay
                while self._rows_waiting() < self._max_batch and not self._closed:
                    remaining = flush_at - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            jobs = [self._queue.popleft()]
            size = jobs[0].pixels.shape[0]
            while self._queue and size + self._queue[0].pixels.shape[0] <= self._max_batch:
                size += self._queue[0].pixels.shape[0]
                jobs.append(self._queue.popleft())
            self._report_depth()
            return jobs

    def _loop(self) -> None:
        while True:
            jobs = self._take()
            if jobs is None:
                return
            self._run(jobs)

    def _run(self, jobs: list[_Job]) -> None:
        now = time.monotonic()
        live = []
        for job in jobs:
            if job.deadline <= now:
                job.error = DeadlineExceeded("deadline exceeded before the model ran")
                job.done.set()
            else:
                live.append(job)
        if not live:
            return
        try:
            batch = live[0].pixels if len(live) == 1 else np.concatenate([j.pixels for j in live])
            out = self._predict(batch)
            seconds = time.monotonic() - now
            if out.shape[0] != batch.shape[0]:
                raise RuntimeError(f"model returned {out.shape[0]} rows for {batch.shape[0]} inputs")
            start = 0
            for job in live:
                n = job.pixels.shape[0]
                job.result = out[start:start + n]
                start += n
        except Exception as exc:  # the callers decide how to answer
            for job in live:
                job.error = exc
        finally:
            for job in live:
                job.done.set()
        if self.observer is not None and live[0].error is None:
            self.observer.ran(batch.shape[0], seconds, [now - j.enqueued for j in live])
