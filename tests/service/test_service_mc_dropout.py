"""Monte Carlo dropout on a real gunicorn: ``/predict?mc_passes=N`` on the tf backend answers
the mean of N passes of the version's ``mc_dropout`` signature with each top-k entry's spread;
a version without the signature, the tflite backend and a bad N are 400s; without the
parameter the answer is as before."""
import numpy as np
import pytest
import requests

from support.service import fashion_data, png_bytes

X = fashion_data()["x_test"][:3]


def _predict(server, query):
    files = [("file", (f"item{i}.png", png_bytes(img), "image/png")) for i, img in enumerate(X)]
    return requests.post(server.url + "/predict" + query, files=files)


def test_mc_passes_answer_the_mean_with_its_spread(tf_server):
    r = _predict(tf_server, "?mc_passes=30&top_k=10")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mc_dropout"] == {"passes": 30} and body["model"]["backend"] == "tf"
    spreads = []
    for item in body["predictions"]:
        probabilities = [t["probability"] for t in item["top_k"]]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
        assert item["label"] == item["top_k"][0]["label"]
        spreads += [t["std"] for t in item["top_k"]]
    assert max(spreads) > 1e-3 and min(spreads) >= 0.0       # the passes differ
    # two requests draw their own masks: the means differ a little
    again = _predict(tf_server, "?mc_passes=30&top_k=10").json()["predictions"]
    first = [[t["probability"] for t in i["top_k"]] for i in body["predictions"]]
    assert not np.allclose(first, [[t["probability"] for t in i["top_k"]] for i in again], atol=0, rtol=0)


def test_mc_passes_apply_min_confidence_to_the_mean(tf_server):
    items = _predict(tf_server, "?mc_passes=5&min_confidence=1").json()["predictions"]
    assert all(i["label"] is None and "below min_confidence 1" in i["reason"] for i in items)


def test_without_mc_passes_the_answer_is_unchanged(tf_server):
    body = _predict(tf_server, "?top_k=3").json()
    assert "mc_dropout" not in body
    assert all("std" not in t for i in body["predictions"] for t in i["top_k"])


def test_a_version_without_the_signature_is_a_400(tf_server):
    r = _predict(tf_server, "?model=faulty&mc_passes=5")
    assert r.status_code == 400
    assert "faulty/1 cannot answer mc_passes" in r.json()["error"] and "'mc_dropout' signature" in r.json()["error"]


def test_the_tflite_backend_is_a_400(tflite_server):
    r = _predict(tflite_server, "?mc_passes=5")
    assert r.status_code == 400
    assert "tflite backend" in r.json()["error"]


@pytest.mark.parametrize("value", ["0", "101", "many", "2.5"])
def test_a_bad_count_is_a_400(tf_server, value):
    r = _predict(tf_server, f"?mc_passes={value}")
    assert r.status_code == 400
    assert "mc_passes must be an integer in [1, 100]" in r.json()["error"]
