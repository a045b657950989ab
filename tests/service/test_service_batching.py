"""service.batching: concurrent requests share one model call, each gets its rows."""
import threading
import time

import numpy as np
import pytest

from service.batching import Batcher
from service.errors import DeadlineExceeded, QueueFull


class Model:
    """A real function of its input: row i -> [sum of row i]; records batch sizes."""

    def __init__(self, delay=0.0):
        self.calls, self.delay = [], delay

    def __call__(self, x):
        self.calls.append(len(x))
        time.sleep(self.delay)
        return x.reshape(len(x), -1).sum(axis=1, keepdims=True).astype(np.float32)


def test_concurrent_requests_are_gathered_and_answered_individually():
    model = Model()
    batcher = Batcher(model, max_batch_size=16, max_delay_s=0.2, max_queue=64)
    results = {}

    def client(i):
        x = np.full((2, 3), i, np.uint8)  # two rows per request
        results[i] = batcher.submit(x, time.monotonic() + 5)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    assert {i: r[:, 0].tolist() for i, r in results.items()} == {i: [3.0 * i] * 2 for i in range(6)}
    assert sum(model.calls) == 12 and len(model.calls) < 6  # fewer calls than requests


def test_batch_never_exceeds_max_batch_size():
    model = Model(delay=0.05)
    batcher = Batcher(model, max_batch_size=4, max_delay_s=0.05, max_queue=64)
    threads = [threading.Thread(target=batcher.submit, args=(np.ones((1, 2), np.uint8), time.monotonic() + 5))
               for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    assert max(model.calls) <= 4 and sum(model.calls) == 10


def test_full_queue_and_deadline_and_model_errors():
    model = Model(delay=0.3)
    batcher = Batcher(model, max_batch_size=1, max_delay_s=0.0, max_queue=1)
    first = threading.Thread(target=batcher.submit, args=(np.ones((1, 1), np.uint8), time.monotonic() + 5))
    first.start()
    time.sleep(0.1)                       # first is running, the queue is empty
    outcome = []

    def late():
        try:
            batcher.submit(np.ones((1, 1), np.uint8), time.monotonic() + 0.1)
        except DeadlineExceeded as exc:
            outcome.append(exc)
    second = threading.Thread(target=late)
    second.start()
    time.sleep(0.02)                      # second waits in the only queue slot
    with pytest.raises(QueueFull):
        batcher.submit(np.ones((1, 1), np.uint8), time.monotonic() + 5)
    first.join()
    second.join()
    batcher.close()
    assert len(outcome) == 1
    assert model.calls == [1]             # the expired job never reached the model

    def broken(x):
        raise ArithmeticError("boom")
    failing = Batcher(broken, 4, 0.0, 4)
    with pytest.raises(ArithmeticError):
        failing.submit(np.ones((1, 1), np.uint8), time.monotonic() + 5)
    failing.close()


def test_a_request_that_gave_up_waiting_does_not_hold_up_the_turn():
    model = Model(delay=0.3)
    batcher = Batcher(model, max_batch_size=1, max_delay_s=0.0, max_queue=8)
    first = threading.Thread(target=batcher.submit, args=(np.ones((1, 1), np.uint8), time.monotonic() + 5))
    first.start()
    time.sleep(0.1)                       # first holds the turn, its model call runs
    with pytest.raises(DeadlineExceeded):
        batcher.submit(np.full((1, 1), 2, np.uint8), time.monotonic() + 0.05)   # queued, gives up
    third = batcher.submit(np.full((1, 1), 3, np.uint8), time.monotonic() + 5)  # behind the abandoned one
    first.join()
    batcher.close()
    assert third.tolist() == [[3.0]] and model.calls == [1, 1]


def test_closed_batcher_still_answers_late_requests():
    model = Model()
    batcher = Batcher(model, 4, 0.0, 0)
    batcher.close()
    out = batcher.submit(np.full((1, 2), 5, np.uint8), time.monotonic() + 5)
    assert out.tolist() == [[10.0]]


def test_a_lone_request_runs_at_once_and_what_waits_meanwhile_is_one_batch():
    model = Model(delay=0.3)
    batcher = Batcher(model, max_batch_size=16, max_delay_s=0.0, max_queue=64)
    first = threading.Thread(target=batcher.submit, args=(np.ones((1, 2), np.uint8), time.monotonic() + 5))
    first.start()
    time.sleep(0.1)                       # the lone request is running, not waiting for company
    assert model.calls == [1]
    rest = [threading.Thread(target=batcher.submit, args=(np.ones((1, 2), np.uint8), time.monotonic() + 5))
            for _ in range(5)]
    for t in rest:
        t.start()
    for t in [first, *rest]:
        t.join()
    batcher.close()
    assert model.calls == [1, 5]          # the five that queued meanwhile: one call


def test_a_request_larger_than_the_batch_runs_in_chunks_and_is_answered_whole():
    model = Model()
    batcher = Batcher(model, max_batch_size=4, max_delay_s=0.0, max_queue=1)
    x = np.arange(10, dtype=np.uint8).reshape(10, 1)
    out = batcher.submit(x, time.monotonic() + 5)   # three chunks, admitted although max_queue is 1
    batcher.close()
    assert out[:, 0].tolist() == list(range(10)) and model.calls == [4, 4, 2]


class Observer:
    def __init__(self):
        self.depths, self.batches = [], []

    def depth(self, jobs):
        self.depths.append(jobs)

    def ran(self, rows, seconds, waited):
        self.batches.append((rows, len(waited)))


def test_observer_sees_queue_depth_and_each_model_call():
    observer = Observer()
    batcher = Batcher(Model(), max_batch_size=4, max_delay_s=0.0, max_queue=8)
    batcher.observer = observer
    batcher.submit(np.ones((6, 1), np.uint8), time.monotonic() + 5)
    batcher.close()
    assert observer.batches == [(4, 1), (2, 1)] and observer.depths[0] == 2 and observer.depths[-1] == 0
