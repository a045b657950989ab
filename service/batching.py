"""Dynamic batching: concurrent requests gathered into one model call.

Each served model version owns one ``Batcher``. A request's images are
split into jobs of at most ``max_batch_size`` rows (a request larger than
the model batch runs as several calls and is answered whole). There is no
batcher thread: the request threads take turns at the model. A request
that finds the model idle takes the turn and runs at once (a lone request
never waits for company, nor for another thread to wake up); requests that
arrive while a call runs queue, and the thread holding the turn runs what
is waiting, up to ``max_batch_size`` rows, as one call. Once its own job is
answered it passes the turn to the thread of the oldest waiting job, so
each waiting request costs one thread wake-up, for its answer or for the
turn (on a busy machine a wake-up is slow, and the thread that wakes
another holds the GIL meanwhile). ``max_delay_s`` > 0 adds a wait for more rows (worth it
where bigger batches are much cheaper, as on a GPU). The queue is bounded
(429 when full); a job whose deadline passed before its turn is answered
504 and not run. After ``close()`` the queued jobs still run; late jobs of
a retired version run inline, so a request always finishes on the version
that started it.
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
    __slots__ = ("pixels", "deadline", "enqueued", "result", "error", "done", "turn", "abandoned", "_signal")

    def __init__(self, pixels: np.ndarray, deadline: float):
        self.pixels = pixels
        self.deadline = deadline
        self.enqueued = time.monotonic()
        self.result = None
        self.error: BaseException | None = None
        self.done = False        # result or error is set
        self.turn = False        # its thread was handed the turn
        self.abandoned = False   # its thread stopped waiting (deadline)
        # A bare lock is the cheapest one-shot signal (threading.Event is a
        # Condition with a lock per waiter).
        self._signal = threading.Lock()
        self._signal.acquire()

    def wake(self) -> None:
        self._signal.release()

    def wait(self, timeout: float) -> bool:
        return self._signal.acquire(timeout=timeout)


class Batcher:
    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], max_batch_size: int,
                 max_delay_s: float, max_queue: int):
        self._predict = predict
        self._max_batch = max_batch_size
        self._max_delay = max_delay_s
        self._max_queue = max_queue
        self.observer: BatchObserver | None = None  # set once warm-up calls are done
        self._queue: collections.deque[_Job] = collections.deque()
        self._cond = threading.Condition()
        self._busy = False        # a thread holds the turn
        self._gathering = False   # the turn's holder waits for more rows (max_delay_s)
        self._closed = False
        self._depth_reported = -1  # the gauge is written when the depth changed only

    def submit(self, pixels: np.ndarray, deadline: float, admit: bool = False) -> np.ndarray:
        """Run ``pixels`` [n,...] through the model; returns its n output rows.

        ``admit`` skips the queue bound (warm-up calls on a fresh version)."""
        jobs = [_Job(pixels[i:i + self._max_batch], deadline)
                for i in range(0, pixels.shape[0], self._max_batch)]
        lead = False  # this thread takes the turn for its first job
        with self._cond:
            closed = self._closed
            if not closed:
                # A request is admitted whole or not at all: its chunks may
                # take the queue past max_queue, never a half request.
                if len(self._queue) >= self._max_queue and not admit:
                    raise QueueFull(f"queue is full ({self._max_queue} requests waiting); retry later")
                self._queue.extend(jobs)
                jobs[0].turn = lead = not self._busy
                self._busy = True
                if self._gathering:
                    self._cond.notify()
                self._report_depth()
        for job in jobs:
            if closed:
                self._run([job])
            elif not (lead and job is jobs[0]):
                self._wait(job)  # for its answer or for the turn
            if job.turn and not job.done:
                self._take_turn(job)
            if job.error is not None:
                raise job.error
        return jobs[0].result if len(jobs) == 1 else np.concatenate([j.result for j in jobs])

    def close(self, wait_s: float = 30.0) -> None:
        """Late jobs run inline from now on; returns once the queued ones ran."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._busy, wait_s)

    def _wait(self, job: _Job) -> None:
        if job.wait(max(0.0, job.deadline - time.monotonic())):
            return
        with self._cond:
            if not (job.done or job.turn):
                # Still queued or running: the turn's holder skips it if queued.
                job.abandoned = True
                raise DeadlineExceeded("deadline exceeded while waiting for the model")
        job.wait(-1)  # answered or handed the turn just now: its signal is set

    def _take_turn(self, mine: _Job) -> None:
        """Run batches, oldest first, until ``mine`` is answered; then pass the turn on."""
        try:
            while not mine.done:
                self._run(self._take())
        finally:
            self._pass_turn()

    def _pass_turn(self) -> None:
        with self._cond:
            while self._queue:
                head = self._queue[0]
                if not head.abandoned:
                    head.turn = True
                    head.wake()
                    return
                self._queue.popleft()  # nobody waits for it
            self._busy = False
            self._report_depth()
            if self._closed:
                self._cond.notify_all()

    def _report_depth(self) -> None:
        depth = len(self._queue)
        if self.observer is not None and depth != self._depth_reported:
            self._depth_reported = depth  # under self._cond, as every caller holds it
            self.observer.depth(depth)

    def _rows_waiting(self) -> int:
        return sum(j.pixels.shape[0] for j in self._queue)

    def _take(self) -> list[_Job]:
        with self._cond:
            if self._max_delay > 0:
                flush_at = self._queue[0].enqueued + self._max_delay
                self._gathering = True
                while self._rows_waiting() < self._max_batch and not self._closed:
                    remaining = flush_at - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                self._gathering = False
            jobs = [self._queue.popleft()]
            size = jobs[0].pixels.shape[0]
            while self._queue and size + self._queue[0].pixels.shape[0] <= self._max_batch:
                size += self._queue[0].pixels.shape[0]
                jobs.append(self._queue.popleft())
            self._report_depth()
            return jobs

    def _run(self, jobs: list[_Job]) -> None:
        now = time.monotonic()
        live = []
        for job in jobs:
            if job.deadline <= now:
                self._answer(job, error=DeadlineExceeded("deadline exceeded before the model ran"))
            else:
                live.append(job)
        if not live:
            return
        error = None
        try:
            batch = live[0].pixels if len(live) == 1 else np.concatenate([j.pixels for j in live])
            out = self._predict(batch)
            seconds = time.monotonic() - now
            if out.shape[0] != batch.shape[0]:
                raise RuntimeError(f"model returned {out.shape[0]} rows for {batch.shape[0]} inputs")
        except Exception as exc:  # the callers decide how to answer
            error = exc
        start = 0
        for job in live:
            n = job.pixels.shape[0]
            self._answer(job, None if error else out[start:start + n], error)
            start += n
        if self.observer is not None and error is None:
            self.observer.ran(batch.shape[0], seconds, [now - j.enqueued for j in live])

    @staticmethod
    def _answer(job: _Job, result=None, error: BaseException | None = None) -> None:
        job.result, job.error, job.done = result, error, True
        job.wake()
