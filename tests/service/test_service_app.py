"""The app in-process: readiness while draining, and in-flight requests across a swap."""
import threading
import time

import numpy as np

from service import create_app
from support.service import fashion_data, model_root, publish_copy


def test_drain_turns_readiness_off_but_still_answers_what_arrives(tmp_path_factory, artifact):
    root = model_root(tmp_path_factory, artifact, "root-drain")
    app = create_app({"model_root": str(root), "backend": "tflite", "poll_interval_s": 0, "retry_after_s": 7})
    client = app.test_client()
    registry = app.extensions["model_registry"]
    registry.start()
    assert registry.wait_ready(60)
    assert client.get("/v2/health/ready").status_code == 200
    registry.drain()
    r = client.get("/v2/health/ready")
    assert r.status_code == 503 and r.headers["Retry-After"] == "7" and "shutting down" in r.get_json()["error"]
    # A request on a connection the worker already accepted is served, not refused.
    r = client.post("/v1/models/fashion:predict", json={"instances": [[[0] * 28] * 28]})
    assert r.status_code == 200 and len(r.get_json()["predictions"]) == 1


def test_request_in_flight_finishes_on_the_version_that_started_it(tmp_path_factory, artifact):
    root = model_root(tmp_path_factory, artifact, "root-swap")
    app = create_app({"model_root": str(root), "backend": "tflite", "poll_interval_s": 0,
                      "max_batch_delay_ms": 2000, "max_batch_size": 64})
    registry = app.extensions["model_registry"]
    registry.start()
    assert registry.wait_ready(60)
    pixels = fashion_data()["x_test"][:1, :, :, None]
    old = registry.get("fashion")
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("p", old.predict(pixels, time.monotonic() + 30)))
    t.start()
    time.sleep(0.2)                       # queued in v1's batcher, waiting for company
    publish_copy(root / "fashion" / "1", root / "fashion", 2)
    assert registry.sync() == {"fashion": [2]}   # v2 loaded and warmed, v1 retired
    t.join(10)
    assert old.version == 1 and result["p"].shape == (1, 10) and np.isclose(result["p"].sum(), 1, atol=1e-4)
    assert registry.get("fashion").version == 2
    assert registry.states("fashion")[1].state == "END"


def test_openapi_describes_every_route(tmp_path):
    import re
    from pathlib import Path

    import yaml
    spec = yaml.safe_load((Path(__file__).parents[2] / "openapi.yaml").read_text())
    app = create_app({"model_root": str(tmp_path), "poll_interval_s": 0})
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:int:)?name>", "{model}", rule.rule)
        path = re.sub(r"<int:version>", "{version}", path)
        path = re.sub(r"<label>", "{label}", path)
        assert path in spec["paths"], path
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in spec["paths"][path], (path, method)
