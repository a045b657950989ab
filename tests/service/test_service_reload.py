"""Hot reload, readiness and graceful shutdown of a real server (tflite backend)."""
import shutil
import signal
import threading

import pytest
import requests

from support.service import (Server, fashion_data, metric, publish_copy, server_for_copies, wait_for,
                            worker_pids)

PIXELS = fashion_data()["x_test"][0].tolist()


def predict(server, **kw):
    return requests.post(server.url + "/v1/models/fashion:predict", json={"instances": [PIXELS]}, **kw)


@pytest.fixture()
def empty_root_server(tmp_path):
    (tmp_path / "models").mkdir()
    server = Server(tmp_path / "models", tmp_path / "server.log", backend="tflite", poll_interval_s=0.2,
                    admin_token="s3cret").wait("/v2/health/live")
    yield server
    server.stop()


def test_503_until_a_version_is_published_then_new_versions_without_restart(empty_root_server, artifact):
    server = empty_root_server
    r = requests.get(server.url + "/v2/health/ready")
    assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0 and "error" in r.json()
    r = requests.post(server.url + "/predict", data=b"x", headers={"Content-Type": "image/png"})
    assert r.status_code in (404, 503) and r.json()["error"]

    model_dir = server.root / "fashion"
    model_dir.mkdir()
    publish_copy(artifact, model_dir, 1)
    assert wait_for(lambda: requests.get(server.url + "/v2/health/ready").status_code == 200), server.log()
    r = predict(server)
    assert r.status_code == 200 and r.json()["model_version"] == "1"

    pids = worker_pids(server)
    publish_copy(artifact, model_dir, 2)                           # atomic rename while serving
    assert wait_for(lambda: predict(server).json()["model_version"] == "2"), server.log()
    status = requests.get(server.url + "/v1/models/fashion").json()["model_version_status"]
    assert [(s["version"], s["state"]) for s in status] == [("2", "AVAILABLE"), ("1", "END")]
    assert requests.get(server.url + "/v1/models/fashion/versions/1:predict").status_code == 405
    assert requests.post(server.url + "/v1/models/fashion/versions/1:predict",
                         json={"instances": [PIXELS]}).status_code == 404
    metrics = requests.get(server.url + "/metrics").text
    assert worker_pids(server) == pids                                # same worker, no restart
    model = {"model": "fashion", "backend": "tflite", "device": "CPU:0"}
    assert metric(metrics, "service_model_backend", version=2, **model) == 1
    assert metric(metrics, "service_model_backend", version=1, **model) == 0   # retired
    assert metric(metrics, "service_model_loads_total", result="ok", **model) == 2


def test_admin_reload_needs_the_bearer_token(empty_root_server, artifact):
    server = empty_root_server
    url = server.url + "/admin/reload"
    assert requests.post(url).status_code == 401
    assert requests.post(url, headers={"Authorization": "Bearer wrong"}).json()["error"]
    shutil.copytree(artifact, server.root / "fashion" / "3")
    r = requests.post(url, headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200 and r.json() == {"models": {"fashion": ["3"]}}
    assert predict(server).json()["model_version"] == "3"


def test_version_policy_all_serves_every_version(tmp_path, artifact):
    server = server_for_copies(tmp_path, artifact, versions=(1, 2), version_policy="all").wait()
    try:
        assert requests.get(server.url + "/v2/models/fashion").json()["versions"] == ["1", "2"]
        one = requests.post(server.url + "/v1/models/fashion/versions/1:predict", json={"instances": [PIXELS]})
        assert one.json()["model_version"] == "1"
        assert predict(server).json()["model_version"] == "2"   # no version: the latest
    finally:
        server.stop()


def test_sigterm_drains_in_flight_requests_then_exits(tmp_path, artifact):
    # A batch waits up to 3 s for company, so a lone request is in flight that long.
    server = server_for_copies(tmp_path, artifact, max_batch_delay_ms=3000, max_batch_size=64,
                               request_timeout_ms=20000).wait()
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", predict(server, timeout=30)))
    t.start()
    assert wait_for(lambda: metric(requests.get(server.url + "/metrics").text, "service_queue_depth") == 1, 10)
    server.proc.send_signal(signal.SIGTERM)
    t.join(30)
    assert result["r"].status_code == 200 and result["r"].json()["model_version"] == "1"
    assert server.proc.wait(30) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/v2/health/live", timeout=2)
    server.stop()
