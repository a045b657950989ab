"""The gunicorn worker lifecycle on real servers (tflite): ready before the
first accept, one scrape for all workers, SIGTERM under concurrent load."""
import collections
import os
import signal
import threading
import time

import requests
import urllib3

from support.service import fashion_data, metric, server_for_copies, wait_for, worker_pids

PIXELS = fashion_data()["x_test"][0].tolist()
PREDICT = "/v1/models/fashion:predict"


def predict(server, session=requests):
    return session.post(server.url + PREDICT, json={"instances": [PIXELS]}, timeout=60)


def refused(exc: requests.ConnectionError) -> bool:
    """The connect itself failed: nothing reached a server (not a lost request)."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def test_a_worker_takes_no_traffic_before_its_models_are_ready(tmp_path, artifact):
    # three versions to load and warm up: a worker is busy a while
    server = server_for_copies(tmp_path, artifact, versions=(1, 2, 3), version_policy="all")
    try:
        statuses = []
        end = time.monotonic() + 120
        while len(statuses) < 10 and time.monotonic() < end:  # from the moment the master listens
            try:
                statuses.append(predict(server).status_code)
            except requests.ConnectionError as exc:
                assert refused(exc), exc       # before the bind only
                time.sleep(0.02)
        assert statuses == [200] * 10, server.log()   # waited in the backlog, never 503 "loading"

        (first,) = worker_pids(server)
        os.kill(first, signal.SIGKILL)      # the replacement loads three versions before it accepts
        statuses = [predict(server).status_code for _ in range(10)]
        assert statuses == [200] * 10, server.log()
        assert worker_pids(server) != [first]
    finally:
        server.stop()


def test_one_scrape_sums_every_worker_and_survives_a_worker_restart(tmp_path, artifact):
    server = server_for_copies(tmp_path, artifact, workers=2).wait()
    try:
        assert wait_for(lambda: len(worker_pids(server)) == 2, 60.0)   # ready means one worker; the other may be forking
        a, b = worker_pids(server)
        # A stopped worker cannot accept: the other one serves every request meanwhile.
        for stopped, n in ((a, 5), (b, 7)):
            os.kill(stopped, signal.SIGSTOP)
            try:
                assert [predict(server).status_code for _ in range(n)] == [200] * n
            finally:
                os.kill(stopped, signal.SIGCONT)

        def served(text):
            return metric(text, "service_requests_total", endpoint="/v1/models/<name>:predict", status=200)
        # A scrape writes its own worker's deferred counts; the other's follow within
        # metrics_flush_s (service/metrics.py).
        assert wait_for(lambda: served(requests.get(server.url + "/metrics").text) == 12, 5.0)
        assert metric(requests.get(server.url + "/metrics").text, "service_workers") == 2

        os.kill(a, signal.SIGKILL)
        assert wait_for(lambda: len(worker_pids(server)) == 2 and a not in worker_pids(server), 60.0)
        assert wait_for(lambda: metric(requests.get(server.url + "/metrics").text, "service_workers") == 2, 60.0)
        assert served(requests.get(server.url + "/metrics").text) == 12   # the dead worker's count stays
    finally:
        server.stop()


def test_sigterm_under_concurrent_requests_loses_none(tmp_path, artifact):
    server = server_for_copies(tmp_path, artifact, workers=2).wait()
    outcomes = collections.Counter()
    lock = threading.Lock()
    sent = threading.Event()

    def count(outcome):
        with lock:
            outcomes[outcome] += 1

    def client():
        with requests.Session() as session:   # keep-alive, as load balancers and SDKs do
            end = time.monotonic() + 30
            while time.monotonic() < end:
                try:
                    r = predict(server, session)
                except requests.ConnectionError as exc:
                    if refused(exc):          # the listener is closed: this client is done
                        count("refused")
                        return
                    count("lost")             # reset or closed after the request was sent
                    continue
                count(r.status_code)
                if sent.is_set():
                    count("after_sigterm")
    clients = [threading.Thread(target=client) for _ in range(6)]
    for t in clients:
        t.start()
    time.sleep(1.0)
    server.proc.send_signal(signal.SIGTERM)
    sent.set()
    for t in clients:
        t.join(40)
    assert server.proc.wait(40) == 0
    server.stop()
    assert outcomes["lost"] == 0, outcomes
    assert {k for k in outcomes if isinstance(k, int)} == {200}, outcomes   # no 503 while draining
    assert outcomes["refused"] == 6 and outcomes[200] > 6
