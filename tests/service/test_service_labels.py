"""Labels on a real gunicorn (tflite): stable and canary split the traffic, pins, promotion and
abort under load without an error, per-version metrics, and shadow mode.

Two versions are copies of the tiny artifact, so they answer alike; which one answered is
read from the response (``X-Model-Version``, and the body field of each protocol).
"""
import math
import threading

import numpy as np
import pytest
import requests

from artifact import labels as L
from support.service import Server, fashion_data, metric, png_bytes, repository_of_copies, wait_for

PIXELS = fashion_data()["x_test"][0].tolist()
POLL_S = 0.3
V1 = "/v1/models/fashion:predict"


@pytest.fixture()
def two_versions(tmp_path, artifact):
    """A repository with fashion/1 and fashion/2, and a function that starts a server on it."""
    models = repository_of_copies(tmp_path, artifact, (1, 2))
    servers = []

    def start(labels: L.Labels | None = None) -> Server:
        if labels is not None:
            L.write(models, "fashion", labels)
        servers.append(Server(models, tmp_path / "s.log", backend="tflite", poll_interval_s=POLL_S).wait())
        return servers[0]

    yield models, start
    for server in servers:
        server.stop()


def v1(session, server, path=V1, **headers):
    r = session.post(server.url + path, json={"instances": [PIXELS]}, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_version"] == r.headers["X-Model-Version"]      # body and header agree
    return int(r.headers["X-Model-Version"])


def test_split_within_binomial_noise_sticky_ids_and_pinned_labels(two_versions):
    _, start = two_versions
    server = start(L.Labels(1, L.Canary(2, percent=30)))
    s = requests.Session()

    # 200 clients with their own request id (the hash decides) and 200 without (a random draw).
    versions = [v1(s, server, **{"X-Request-ID": f"user-{i}"}) for i in range(200)]
    versions += [v1(s, server) for _ in range(200)]
    n, canary = len(versions), versions.count(2)
    assert set(versions) == {1, 2}
    se = math.sqrt(0.3 * 0.7 / n)
    print(f"canary share {canary}/{n} = {canary / n:.3f} (expected 0.30, 3 standard errors = {3 * se:.3f})")
    assert abs(canary / n - 0.30) <= 3 * se

    # One client stays on one version, over every protocol; V2 may key by the body's id.
    for rid in ("sticky-a", "sticky-b", "sticky-c", "sticky-d"):
        seen = {v1(s, server, **{"X-Request-ID": rid}) for _ in range(10)}
        r = s.post(server.url + "/predict", data=_png(), headers={"Content-Type": "image/png", "X-Request-ID": rid})
        seen.add(r.json()["model"]["version"])
        for _ in range(5):
            r = s.post(server.url + "/v2/models/fashion/infer", json=_v2_body(rid))
            assert r.json()["model_version"] == r.headers["X-Model-Version"] and r.json()["id"] == rid
            seen.add(int(r.json()["model_version"]))
        assert len(seen) == 1, (rid, seen)

    # Pins: a label always gets its version, whatever the split; a version too.
    for _ in range(20):
        assert v1(s, server, "/v1/models/fashion/labels/canary:predict") == 2
        assert v1(s, server, "/v1/models/fashion/labels/stable:predict") == 1
    r = s.post(server.url + "/v1/models/fashion/labels/canary:predict", json={"instances": [PIXELS]})
    assert r.headers["X-Model-Label"] == "canary"
    assert v1(s, server, "/v1/models/fashion/versions/1:predict") == 1
    assert s.post(server.url + "/v2/models/fashion/versions/2/infer", json=_v2_body()).json()["model_version"] == "2"
    r = s.post(server.url + "/predict?label=canary", data=_png(), headers={"Content-Type": "image/png"})
    assert r.json()["model"]["version"] == 2 and r.headers["X-Model-Version"] == "2"
    r = s.post(server.url + "/v1/models/fashion/labels/beta:predict", json={"instances": [PIXELS]})
    assert r.status_code == 404 and "unknown label 'beta'" in r.json()["error"]
    r = s.post(server.url + "/predict?label=canary&version=1", data=_png(), headers={"Content-Type": "image/png"})
    assert r.status_code == 400 and "not both" in r.json()["error"]
    # Metadata without a version describes stable.
    assert s.get(server.url + "/v2/models/fashion").json()["parameters"]["version"] == "1"

    # Per-version metrics: requests, latency and confidence carry the version.
    text = s.get(server.url + "/metrics").text
    for version in (1, 2):
        assert metric(text, "service_requests_total", model="fashion", version=version, status=200) > 0
        assert metric(text, "service_request_duration_seconds_count", model="fashion", version=version) > 0
        assert metric(text, "service_prediction_confidence_count", model="fashion", version=version) > 0
    assert metric(text, "service_requests_total", version=2, endpoint="/v1/models/<name>:predict") >= canary


def test_promotion_and_abort_under_load_answer_no_error(two_versions):
    models, start = two_versions
    server = start(L.Labels(1, L.Canary(2, percent=30)))
    stop, results = threading.Event(), []

    def load():
        s = requests.Session()
        while not stop.is_set():
            r = s.post(server.url + V1, json={"instances": [PIXELS]}, timeout=30)
            results.append((r.status_code, r.headers.get("X-Model-Version")))

    def recent_all(version: str, n: int = 20) -> bool:
        mark = len(results)
        wait_for(lambda: len(results) >= mark + n, 10)
        return all(v == version for _, v in results[mark:mark + n])

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        assert wait_for(lambda: len(results) > 50, 30)
        L.write(models, "fashion", L.Labels(2))                    # promotion: the canary becomes stable
        assert wait_for(lambda: recent_all("2"), 10), server.log()
        L.write(models, "fashion", L.Labels(1, L.Canary(2, 50)))   # a canary again (v1 reloads first)
        assert wait_for(lambda: {v for _, v in results[-40:]} == {"1", "2"}, 20), server.log()
        L.write(models, "fashion", L.Labels(1))                    # abort: back to stable alone
        assert wait_for(lambda: recent_all("1"), 10), server.log()
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    statuses = [code for code, _ in results]
    print(f"{len(results)} requests under load, statuses {sorted(set(statuses))}")
    assert statuses.count(200) == len(statuses), [r for r in results if r[0] != 200][:5]
    status = requests.get(server.url + "/v1/models/fashion").json()["model_version_status"]
    assert {s["version"]: s["state"] for s in status}["2"] == "END"     # nothing routes to it: retired


def test_without_labels_the_newest_answers_and_canary_label_is_404(two_versions):
    _, start = two_versions
    server = start()
    s = requests.Session()
    assert {v1(s, server) for _ in range(20)} == {2}
    assert v1(s, server, "/v1/models/fashion/labels/stable:predict") == 2
    r = s.post(server.url + "/v1/models/fashion/labels/canary:predict", json={"instances": [PIXELS]})
    assert r.status_code == 404 and "has no canary" in r.json()["error"]


def test_shadow_canary_answers_nothing_and_agreement_is_counted(two_versions):
    _, start = two_versions
    server = start(L.Labels(1, L.Canary(2, percent=50, shadow=True)))
    s = requests.Session()
    assert {v1(s, server) for _ in range(50)} == {1}
    r = s.post(server.url + "/v2/models/fashion/infer", json=_v2_body())
    assert r.json()["model_version"] == "1"

    def compared() -> float:
        text = s.get(server.url + "/metrics").text
        return metric(text, "service_shadow_comparisons_total", model="fashion", stable_version=1,
                      canary_version=2, agree="true")

    assert wait_for(lambda: compared() >= 40, 10), server.log()
    text = s.get(server.url + "/metrics").text
    assert metric(text, "service_shadow_comparisons_total", agree="false") == 0   # the same model
    assert metric(text, "service_prediction_confidence_count", version=2) >= 40
    assert metric(text, "service_requests_total", version=2) == 0                 # answered none


def _png() -> bytes:
    return png_bytes(np.asarray(PIXELS, np.uint8))


def _v2_body(request_id: str | None = None) -> dict:
    body = {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 28, 28, 1], "data": PIXELS}]}
    if request_id:
        body["id"] = request_id
    return body
