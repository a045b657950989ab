"""'Not sure' answers on a real gunicorn (tflite): ``min_confidence`` per request on
``/predict``, TF Serving v1 and KServe V2 (the unmodified Triton client too), the
version's metadata default, ``SERVICE_MIN_CONFIDENCE`` over it, the metric, and 400s.

The tiny model's top probabilities for the first fixture test images are about
0.987, 0.494 and 0.356, so at 0.8 the first is answered and the other two are not.
"""
import json
import shutil

import pytest
import requests
import tritonclient.http as httpclient

from artifact import metadata as md
from artifact.versions import publish
from support.service import LABELS, Server, fashion_data, metric, png_bytes, reference_top1, wait_for

X = fashion_data()["x_test"][:3]
TOP1 = [LABELS[k] for k in reference_top1(X[..., None])]


def _multipart():
    return [("file", (f"item{i}.png", png_bytes(img), "image/png")) for i, img in enumerate(X)]


def _predict(server, query=""):
    return requests.post(server.url + "/predict" + query, files=_multipart())


def test_predict_withholds_labels_below_the_request_threshold(tflite_server):
    r = _predict(tflite_server, "?min_confidence=0.8&top_k=2")
    assert r.status_code == 200, r.text
    sure, unsure, unsure2 = r.json()["predictions"]
    assert sure["label"] == TOP1[0] and "reason" not in sure
    for item in (unsure, unsure2):
        assert item["label"] is None
        assert "below min_confidence 0.8" in item["reason"]
        assert len(item["top_k"]) == 2 and item["top_k"][0]["probability"] < 0.8  # still there
    top = unsure["top_k"][0]["probability"]
    assert f"top probability {top:.4f}" in unsure["reason"]


def test_predict_at_zero_and_by_default_always_answers(tflite_server):
    for query in ("?min_confidence=0", ""):
        items = _predict(tflite_server, query).json()["predictions"]
        assert [i["label"] for i in items] == TOP1
        assert not any("reason" in i for i in items)


@pytest.mark.parametrize("value", ["1.5", "-0.1", "high", "nan"])
def test_predict_rejects_a_bad_threshold(tflite_server, value):
    r = _predict(tflite_server, f"?min_confidence={value}")
    assert r.status_code == 400
    assert "min_confidence" in r.json()["error"] and "[0, 1]" in r.json()["error"]


def test_v1_lists_withheld_items_beside_the_probabilities(tflite_server):
    url = tflite_server.url + "/v1/models/fashion:predict"
    instances = [img.tolist() for img in X]
    r = requests.post(url, json={"instances": instances, "min_confidence": 0.8})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["predictions"]) == 3 and len(body["predictions"][1]) == 10
    assert set(body["not_sure"]) == {"1", "2"} and "below min_confidence 0.8" in body["not_sure"]["1"]
    assert "not_sure" not in requests.post(url, json={"instances": instances}).json()
    for bad in (2, "0.5", True):
        r = requests.post(url, json={"instances": instances, "min_confidence": bad})
        assert r.status_code == 400 and "min_confidence" in r.json()["error"], bad


def test_v2_lists_withheld_items_in_parameters(tflite_server):
    url = tflite_server.url + "/v2/models/fashion/infer"
    tensor = {"name": "pixels", "datatype": "UINT8", "shape": [3, 28, 28, 1], "data": X.ravel().tolist()}
    r = requests.post(url, json={"inputs": [tensor], "parameters": {"min_confidence": 0.8}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["outputs"][0]["shape"] == [3, 10]
    not_sure = json.loads(body["parameters"]["not_sure"])
    assert set(not_sure) == {"1", "2"}
    assert "parameters" not in requests.post(url, json={"inputs": [tensor]}).json()
    r = requests.post(url, json={"inputs": [tensor], "parameters": {"min_confidence": "high"}})
    assert r.status_code == 400 and "parameters.min_confidence" in r.json()["error"]


def test_v2_through_the_triton_client(tflite_server):
    client = httpclient.InferenceServerClient(url=tflite_server.url.removeprefix("http://"))
    try:
        inp = httpclient.InferInput("pixels", [3, 28, 28, 1], "UINT8")
        inp.set_data_from_numpy(X[..., None], binary_data=True)
        out = httpclient.InferRequestedOutput("probabilities", binary_data=True)
        result = client.infer("fashion", [inp], outputs=[out], parameters={"min_confidence": 0.99})
        assert result.as_numpy("probabilities").shape == (3, 10)
        assert set(json.loads(result.get_response()["parameters"]["not_sure"])) == {"0", "1", "2"}
    finally:
        client.close()


def _publish_with_default(artifact, models, min_confidence: float):
    def write(staging):
        shutil.copytree(artifact, staging, dirs_exist_ok=True)
        return md.read(staging).updated({"serving": {"min_confidence": min_confidence}})
    return publish(models, "fashion", write)


@pytest.fixture(scope="module")
def default_models(tmp_path_factory, artifact):
    """fashion/1 whose metadata.json says serving.min_confidence 0.8."""
    models = tmp_path_factory.mktemp("confidence") / "models"
    models.mkdir()
    _publish_with_default(artifact, models, 0.8)
    return models


def test_the_version_default_applies_and_a_request_overrides_it(default_models, tmp_path):
    server = Server(default_models, tmp_path / "s.log", backend="tflite", poll_interval_s=0).wait()
    try:
        items = _predict(server).json()["predictions"]
        assert [i["label"] for i in items] == [TOP1[0], None, None]
        items = _predict(server, "?min_confidence=0").json()["predictions"]
        assert [i["label"] for i in items] == TOP1
        body = requests.post(server.url + "/v1/models/fashion:predict",
                             json={"instances": [img.tolist() for img in X]}).json()
        assert set(body["not_sure"]) == {"1", "2"}
        scrape = requests.get(server.url + "/metrics").text
        assert metric(scrape, "service_not_sure_total", model="fashion", version="1") == 4
    finally:
        server.stop()


def test_the_service_setting_overrides_the_version_default(default_models, tmp_path):
    server = Server(default_models, tmp_path / "s.log", backend="tflite", poll_interval_s=0,
                    min_confidence=0.3).wait()
    try:
        items = _predict(server).json()["predictions"]
        assert [i["label"] for i in items] == TOP1
        items = _predict(server, "?min_confidence=0.99").json()["predictions"]
        assert [i["label"] for i in items] == [None, None, None]
    finally:
        server.stop()


def test_a_bad_metadata_default_fails_the_load(artifact, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    _publish_with_default(artifact, models, 0.5)
    meta = json.loads((models / "fashion" / "1" / "metadata.json").read_text())
    meta["serving"]["min_confidence"] = 7
    (models / "fashion" / "1" / "metadata.json").write_text(json.dumps(meta))
    server = Server(models, tmp_path / "s.log", backend="tflite", poll_interval_s=0).wait("/v2/health/live")
    try:
        rows = []

        def ended() -> bool:
            rows[:] = requests.get(server.url + "/v1/models/fashion", timeout=5).json()["model_version_status"]
            return rows[0]["state"] == "END"

        assert wait_for(ended), rows
        assert "serving.min_confidence" in rows[0]["status"]["error_message"]
    finally:
        server.stop()
