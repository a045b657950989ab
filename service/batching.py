"""Dynamic batching: concurrent requests gathered into one model call.

Each served model version owns one ``Batcher`` and its thread. A request's
images are one job; the thread waits at most ``max_delay_s`` after the first
queued job for more, takes jobs up to ``max_batch_size`` images, runs one
model call and hands each job its own rows. The queue is bounded (429 when
full); a job whose deadline passed before its turn is answered 504 and not run.
After ``close()`` the thread finishes what is queued and stops; late jobs of
a retired version then run inline, so a request always finishes on the
version that started it.
"""
from __future__ import annotations

import collections
import threading
import time
from typing import Callable

import numpy as np

from .errors import DeadlineExceeded, QueueFull


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
                 max_delay_s: float, max_queue: int,
                 on_batch: Callable[[int], None] | None = None, name: str = "batcher"):
        self._predict = predict
        self._max_batch = max_batch_size
        self._max_delay = max_delay_s
        self._max_queue = max_queue
        self._on_batch = on_batch or (lambda size: None)
        self._queue: collections.deque[_Job] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        return len(self._queue)

    def submit(self, pixels: np.ndarray, deadline: float, admit: bool = False) -> np.ndarray:
        """Run ``pixels`` [n,...] through the model; returns its n output rows.

        ``admit`` skips the queue bound (warm-up calls on a fresh version)."""
        job = _Job(pixels, deadline)
        with self._cond:
            closed = self._closed
            if not closed:
                if len(self._queue) >= self._max_queue and not admit:
                    raise QueueFull(f"queue is full ({self._max_queue} requests waiting); retry later")
                self._queue.append(job)
                self._cond.notify()
        if closed:
            self._run([job])
        elif not job.done.wait(max(0.0, deadline - time.monotonic())):
            # Still queued or running: give up waiting; the thread skips it if queued.
            raise DeadlineExceeded("deadline exceeded while waiting for the model")
        if job.error is not None:
            raise job.error
        return job.result

    def close(self, wait_s: float = 30.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(wait_s)

    def _take(self) -> list[_Job] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return None  # closed and drained
            flush_at = self._queue[0].enqueued + self._max_delay
            while (sum(j.pixels.shape[0] for j in self._queue) < self._max_batch
                   and not self._closed):
                remaining = flush_at - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            jobs = [self._queue.popleft()]
            size = jobs[0].pixels.shape[0]
            while self._queue and size + self._queue[0].pixels.shape[0] <= self._max_batch:
                size += self._queue[0].pixels.shape[0]
                jobs.append(self._queue.popleft())
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
            if out.shape[0] != batch.shape[0]:
                raise RuntimeError(f"model returned {out.shape[0]} rows for {batch.shape[0]} inputs")
            self._on_batch(batch.shape[0])
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
