"""'Unfamiliar input' answers (service/energy.py) on a real gunicorn: the energy output of a
version that has it, its ``serving.max_energy`` default, the per-request override and off
switch on ``/predict``, TF Serving v1 and KServe V2, ``SERVICE_MAX_ENERGY``, the metric,
400s, and a version without the output answering exactly as before.

The tiny model's energies (-logsumexp of its logits, computed here in numpy) decide which
image is unfamiliar: the version's threshold lies between the lowest and the two higher of
the first three fixture test images.
"""
import json
import math

import numpy as np
import pytest
import requests

from artifact import metadata as md
from service import energy
from support.browser import needs_chromium, page_at
from support.service import LABELS, Server, build_artifact, fashion_data, metric, png_bytes, reference_energy, \
    reference_top1

X = fashion_data()["x_test"][:3]
TOP1 = [LABELS[k] for k in reference_top1(X[..., None])]
ENERGY = reference_energy(X)
ORDER = np.argsort(ENERGY)
LIMIT = float((ENERGY[ORDER[0]] + ENERGY[ORDER[1]]) / 2)       # only the most familiar image passes
UNFAMILIAR = {str(i) for i in ORDER[1:]}
def _multipart():
    return [("file", (f"item{i}.png", png_bytes(img), "image/png")) for i, img in enumerate(X)]


def _predict(server, query=""):
    r = requests.post(server.url + "/predict" + query, files=_multipart())
    assert r.status_code == 200, r.text
    return r.json()["predictions"]


@pytest.fixture(scope="module")
def energy_models(tmp_path_factory):
    """fashion/1: the tiny model with the energy output and serving.max_energy = LIMIT."""
    models = tmp_path_factory.mktemp("energy") / "models"
    models.mkdir()
    build_artifact(models, energy=True, serving={"max_energy": round(LIMIT, 4)})
    return models


@pytest.fixture(scope="module")
def energy_server(energy_models, tmp_path_factory):
    server = Server(energy_models, tmp_path_factory.mktemp("logs") / "energy.log", backend="tflite",
                    poll_interval_s=0).wait()
    yield server
    server.stop()


def test_the_spread_is_wide_enough_to_split():
    assert ENERGY[ORDER[1]] - ENERGY[ORDER[0]] > 0.01 and len(UNFAMILIAR) == 2


def test_predict_withholds_unfamiliar_inputs_by_the_version_default(energy_server):
    items = _predict(energy_server, "?top_k=2")
    for i, item in enumerate(items):
        assert item["energy"] == pytest.approx(ENERGY[i], abs=1e-3)     # the served output, read by name
        assert len(item["top_k"]) == 2 and item["top_k"][0]["label"] == TOP1[i]   # still there
        if str(i) in UNFAMILIAR:
            assert item["label"] is None
            assert item["reason"] == f"unfamiliar input: energy {item['energy']:.4f} is above max_energy " \
                                      f"{round(LIMIT, 4):g}"
        else:
            assert item["label"] == TOP1[i] and "reason" not in item
    scrape = requests.get(energy_server.url + "/metrics").text
    assert metric(scrape, "service_unfamiliar_total", model="fashion", version="1") >= 2


def test_a_request_overrides_the_limit_or_turns_it_off(energy_server):
    for query in ("?max_energy=off", "?max_energy=inf", f"?max_energy={ENERGY.max() + 1}"):
        assert [i["label"] for i in _predict(energy_server, query)] == TOP1, query
    items = _predict(energy_server, f"?max_energy={ENERGY.min() - 1}")
    assert [i["label"] for i in items] == [None] * 3
    assert all(i["reason"].startswith("unfamiliar input") for i in items)


def test_unfamiliar_comes_before_not_sure(energy_server):
    items = _predict(energy_server, "?min_confidence=1&max_energy=off")
    assert all(i["reason"].startswith("top probability") for i in items)
    items = _predict(energy_server, "?min_confidence=1")
    for i, item in enumerate(items):
        assert item["reason"].startswith("unfamiliar input" if str(i) in UNFAMILIAR else "top probability")


@pytest.mark.parametrize("value", ["high", "nan", "-inf", ""])
def test_predict_rejects_a_bad_limit(energy_server, value):
    r = requests.post(energy_server.url + f"/predict?max_energy={value}", files=_multipart())
    assert r.status_code == 400
    assert "max_energy" in r.json()["error"]


def test_v1_lists_unfamiliar_items_beside_the_probabilities(energy_server):
    url = energy_server.url + "/v1/models/fashion:predict"
    instances = [img.tolist() for img in X]
    body = requests.post(url, json={"instances": instances}).json()
    assert len(body["predictions"]) == 3 and len(body["predictions"][0]) == 10    # the probabilities only
    assert set(body["unfamiliar"]) == UNFAMILIAR
    assert all(reason.startswith("unfamiliar input: energy") for reason in body["unfamiliar"].values())
    assert "unfamiliar" not in requests.post(url, json={"instances": instances, "max_energy": "off"}).json()
    body = requests.post(url, json={"instances": instances, "max_energy": float(ENERGY.min() - 1)}).json()
    assert set(body["unfamiliar"]) == {"0", "1", "2"}
    for bad in (True, "high", [1]):
        r = requests.post(url, json={"instances": instances, "max_energy": bad})
        assert r.status_code == 400 and "max_energy" in r.json()["error"], bad


def test_v2_lists_unfamiliar_items_in_parameters(energy_server):
    url = energy_server.url + "/v2/models/fashion/infer"
    tensor = {"name": "pixels", "datatype": "UINT8", "shape": [3, 28, 28, 1], "data": X.ravel().tolist()}
    body = requests.post(url, json={"inputs": [tensor]}).json()
    assert body["outputs"][0]["shape"] == [3, 10]
    assert set(json.loads(body["parameters"]["unfamiliar"])) == UNFAMILIAR
    assert "parameters" not in requests.post(url, json={"inputs": [tensor], "parameters": {"max_energy": "off"}}).json()
    r = requests.post(url, json={"inputs": [tensor], "parameters": {"max_energy": "high"}})
    assert r.status_code == 400 and "parameters.max_energy" in r.json()["error"]


def test_a_version_without_the_energy_output_answers_as_before(tflite_server):
    """The shared server's version has no energy output: no energy, no unfamiliar, whatever the limit."""
    items = _predict(tflite_server, "?max_energy=-1000000")
    assert [i["label"] for i in items] == TOP1
    assert not any("energy" in i or "reason" in i for i in items)
    body = requests.post(tflite_server.url + "/v1/models/fashion:predict",
                         json={"instances": [img.tolist() for img in X], "max_energy": -1e6}).json()
    assert "unfamiliar" not in body and len(body["predictions"]) == 3


def test_the_tf_backend_and_the_service_setting(energy_models, tmp_path):
    """The SavedModel's energy output, and SERVICE_MAX_ENERGY over the version's default."""
    server = Server(energy_models, tmp_path / "s.log", backend="tf", poll_interval_s=0,
                    max_energy=float(ENERGY.min() - 1)).wait()
    try:
        items = _predict(server)
        assert [i["label"] for i in items] == [None] * 3
        np.testing.assert_allclose([i["energy"] for i in items], ENERGY, atol=1e-3)
        assert [i["label"] for i in _predict(server, "?max_energy=off")] == TOP1
    finally:
        server.stop()


def test_the_metadata_default_round_trips_and_a_bad_one_is_refused(energy_models):
    meta = md.read(energy_models / "fashion" / "1")
    assert energy.version_default(meta) == round(LIMIT, 4)
    assert energy.version_default(md.read(energy_models / "fashion" / "1").updated({"serving": {}})) == math.inf
    for bad in ("high", True, None, float("nan")):
        with pytest.raises(ValueError, match="serving.max_energy"):
            energy.version_default(meta.updated({"serving": {"max_energy": bad}}))


@needs_chromium
def test_the_page_shows_the_unfamiliar_reason_and_takes_a_limit(energy_server, tmp_path):
    from playwright.sync_api import expect
    i = int(ORDER[2])                   # above the version's limit
    image = tmp_path / "item.png"
    image.write_bytes(png_bytes(X[i]))
    with page_at(energy_server.url + "/") as page:
        page.set_input_files("#file", str(image))
        page.click("#submit")
        expect(page.locator("#verdict")).to_contain_text("Not like the training images: unfamiliar input: energy",
                                                         timeout=15000)
        expect(page.locator("#result tr.top1 td").first).to_have_text(TOP1[i])   # still there
        page.fill("#maxenergy", "off")
        page.click("#submit")
        expect(page.locator("#verdict")).to_have_text("Answer: " + TOP1[i], timeout=15000)


def test_the_service_setting_is_a_number_or_inf():
    from service.config import ServiceConfig
    assert ServiceConfig.load(environ={}).max_energy is None
    assert ServiceConfig.load(environ={"SERVICE_MAX_ENERGY": "-6.5"}).max_energy == -6.5
    assert ServiceConfig.load(environ={"SERVICE_MAX_ENERGY": "inf"}).max_energy == math.inf
    for bad in ("nan", "-inf", "high"):
        with pytest.raises(ValueError, match="MAX_ENERGY|max_energy"):
            ServiceConfig.load(environ={"SERVICE_MAX_ENERGY": bad})
