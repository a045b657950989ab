"""Prediction drift in the service (service/drift.py): the ring buffer, and the gauges on a
real gunicorn's /metrics once a version with a drift_reference has answered enough images."""
import shutil

import numpy as np
import pytest
import requests

from artifact import drift as ad
from artifact import metadata as md
from artifact.litert import LiteRTRunner
from service.drift import Window
from support.service import Server, fashion_data, metric

V1 = "/v1/models/{}:predict"


def reference_of(n=400):
    labels = [f"c{i}" for i in range(10)]
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10), n)
    return ad.Reference.from_dict(ad.reference_block(probs, labels), labels)


def test_the_window_keeps_the_last_images_and_says_when_a_test_is_due():
    window = Window(reference_of(), size=100)           # tested every 5 images, from 50 on
    rows = np.eye(10)[np.arange(130) % 10] * 0.5 + 0.05
    dues = [window.add(rows[i:i + 1]) for i in range(49)]
    assert not any(dues) and window.filled == 49
    assert window.add(rows[49:50])                       # 50 images: the first test
    assert not window.add(rows[50:54]) and window.add(rows[54:55])
    window.add(rows[55:130])                             # wraps around: the last 100 are kept
    assert window.filled == 100 and window.seen == 130
    assert sorted(window.predicted.tolist()) == sorted((np.arange(30, 130) % 10).tolist())
    assert window.result().images == 100
    window.add(np.tile(rows[:1], (250, 1)))              # more than a window at once: its last 100
    assert set(window.predicted.tolist()) == {0}
    big = np.full((250, 10), 0.01)
    big[:, 0] = np.arange(250) / 1000 + 0.5               # top-1 probability tells the rows apart
    window.add(big)
    window.add(np.tile(rows[3:4], (30, 1)))              # the 30 oldest of big's kept 100 are replaced
    kept = sorted(np.round(window.confidence, 6).tolist())
    assert kept == [0.55] * 30 + [round(i / 1000 + 0.5, 6) for i in range(180, 250)] and window.seen == 660


def serve(tmp_path, artifact, **settings) -> Server:
    """fashion/1: the tiny artifact with a drift_reference from its own TFLite answers on the
    fixture's training images; plain/1: the same without one. Window of 100 per worker."""
    root = tmp_path / "models"
    shutil.copytree(artifact, root / "fashion" / "1")
    shutil.copytree(artifact, root / "plain" / "1")
    version = root / "fashion" / "1"
    meta = md.read(version)
    probs = LiteRTRunner(version / "model.tflite").predict(fashion_data()["x_train"][:1000])
    md.write(version, meta.updated({ad.BLOCK: ad.reference_block(probs, meta.labels, "validation", "tflite")}))
    return Server(root, tmp_path / "s.log", backend="tflite", poll_interval_s=0, drift_window=100, **settings).wait()


@pytest.fixture()
def drift_server(tmp_path, artifact):
    server = serve(tmp_path, artifact)
    yield server
    server.stop()


def predict(server, model, images):
    for start in range(0, len(images), 50):
        r = requests.post(server.url + V1.format(model),
                          json={"instances": images[start:start + 50].tolist()}, timeout=60)
        assert r.status_code == 200, r.text


def scrape(server):
    return requests.get(server.url + "/metrics", timeout=30).text


def test_drift_gauges_appear_after_enough_answers_and_fire_on_foreign_images(drift_server):
    x = fashion_data()["x_test"]
    predict(drift_server, "plain", x[:100])
    predict(drift_server, "fashion", x[:40])
    text = scrape(drift_server)
    assert "service_drift_p_value{" not in text           # fewer than 50 answers: no test yet
    predict(drift_server, "fashion", x[40:100])
    text = scrape(drift_server)
    clean = metric(text, "service_drift_p_value", model="fashion", version="1")
    assert metric(text, "service_drift_window_images", model="fashion", version="1") == 100
    assert metric(text, "service_drift_statistic", model="fashion", version="1", test="chi2") > 0
    assert clean > ad.ALPHA                               # held-out fixture images: no alarm
    assert 'model="plain"' not in "".join(line for line in text.splitlines() if line.startswith("service_drift"))
    noise = np.random.default_rng(0).integers(0, 256, (100, 28, 28, 1), dtype=np.uint8)
    predict(drift_server, "fashion", noise)               # a window of noise
    drifted = metric(scrape(drift_server), "service_drift_p_value", model="fashion", version="1")
    assert drifted < ad.ALPHA


def test_two_workers_export_one_drift_series_per_version(tmp_path, artifact):
    """Each worker tests its own window; a scrape merges them into one series per version (the
    smallest p-value, which each worker has multiplied by the worker count)."""
    server = serve(tmp_path, artifact, workers=2)
    try:
        predict(server, "fashion", fashion_data()["x_test"][:300])     # 6 requests: one worker has >= 50
        lines = [line for line in scrape(server).splitlines() if line.startswith("service_drift_p_value{")]
        assert len(lines) == 1 and 'model="fashion"' in lines[0] and "pid" not in lines[0], lines
        assert 0.0 <= float(lines[0].rsplit(" ", 1)[1]) <= 1.0
    finally:
        server.stop()


def test_under_gunicorn_each_worker_scales_its_p_value_by_the_worker_count(monkeypatch, tmp_path):
    """Bonferroni over workers: the scrape keeps the smallest worker p-value, so each worker
    exports min(1, workers x p) and p < alpha keeps its false-alarm rate."""
    from types import SimpleNamespace

    from service.drift import DriftMonitor
    from service.metrics import Metrics
    labels = [f"c{i}" for i in range(10)]
    rng = np.random.default_rng(5)
    block = ad.reference_block(rng.dirichlet(np.ones(10), 400), labels)
    info = SimpleNamespace(metadata=md.Metadata(name="m", labels=labels, input=md.InputSpec.of(28, 28, "L"),
                                                extra={ad.BLOCK: block}))
    lv = SimpleNamespace(name="m", version=1, info=info)
    rows = rng.dirichlet(np.full(10, 0.7), 60)                 # a little sharper than the reference
    expected = ad.compare_probabilities(info.metadata.drift_reference, rows)
    for workers, multiprocess in ((3, True), (3, False)):
        if multiprocess:
            monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
        else:
            monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
        metrics = Metrics()
        monitor = DriftMonitor(metrics, window=100, workers=workers)
        monitor.observe(lv, rows)
        value = metrics.registry.get_sample_value("service_drift_p_value", {"model": "m", "version": "1"})
        factor = workers if multiprocess else 1
        assert value == pytest.approx(min(1.0, factor * expected.p_value))
    assert 0 < expected.p_value < 1 / 3                        # the factor made a difference


@pytest.mark.parametrize("value,ok", [("0", True), ("50", True), ("10", False), ("-1", False)])
def test_the_drift_window_is_off_or_large_enough_to_be_tested(value, ok):
    from service.config import ServiceConfig
    if ok:
        assert ServiceConfig.load(environ={"SERVICE_DRIFT_WINDOW": value}).drift_window == int(value)
    else:
        with pytest.raises(ValueError, match="drift_window"):
            ServiceConfig.load(environ={"SERVICE_DRIFT_WINDOW": value})
