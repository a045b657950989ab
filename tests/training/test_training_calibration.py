"""Calibration at publish (training.publish.calibration): the temperature fit, ECE and NLL,
the temperature baked into the exported graphs, and the retrain rule that keeps it."""
import json

import numpy as np
import pytest

from artifact.litert import LiteRTRunner
from training.fit.train import predict_probabilities
from training.publish import calibration
from training.publish.policies import EXIT_WORSE, CalibrationNotWorse
from training.publish.release import publish_result
from training.publish.scoring import Score

from support.builders import trained_tiny


def _softmax(logits):
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_fit_temperature_recovers_the_temperature_that_made_the_data():
    """Labels drawn from softmax(z / 2): the NLL-optimal T on logits z is 2, up to sampling."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, size=(20000, 10))
    y = np.array([rng.choice(10, p=p) for p in _softmax(logits / 2.0)])
    fitted = calibration.fit_temperature(_softmax(logits), y)
    assert fitted == pytest.approx(2.0, rel=0.05)
    # an over-confident model's probabilities get softer, and the fit is on log(p): the logits'
    # per-row constant is irrelevant
    assert calibration.fit_temperature(_softmax(logits + 7.0), y) == pytest.approx(fitted, rel=1e-6)


def test_temper_keeps_every_answer_and_one_is_the_identity():
    probs = _softmax(np.random.default_rng(1).normal(0, 3, size=(50, 4)))
    np.testing.assert_allclose(calibration.temper(probs, 1.0), probs, atol=1e-12)
    np.testing.assert_array_equal(calibration.temper(probs, 3.0).argmax(1), probs.argmax(1))
    np.testing.assert_allclose(calibration.temper(calibration.temper(probs, 2.0), 0.5), probs, atol=1e-9)


def test_ece_and_nll_on_hand_made_cases():
    y = np.array([0, 0, 1, 1])
    # confident and right: no gap, no loss beyond log(1)
    assert calibration.ece(np.eye(2)[y], y) == 0.0
    assert calibration.nll(np.eye(2)[y], y) == pytest.approx(0.0, abs=1e-9)
    # 0.9 confident, half right: one bin, |0.5 - 0.9| = 0.4
    probs = np.array([[0.9, 0.1], [0.1, 0.9], [0.1, 0.9], [0.9, 0.1]])
    assert calibration.ece(probs, y) == pytest.approx(0.4)
    assert calibration.nll(probs, y) == pytest.approx(-(np.log(0.9) * 2 + np.log(0.1) * 2) / 4)
    # two bins: 0.6 confident and right (gap 0.4), 0.95 confident and right (gap 0.05), equal weight
    probs = np.array([[0.6, 0.4], [0.95, 0.05]])
    assert calibration.ece(probs, np.array([0, 0])) == pytest.approx((0.4 + 0.05) / 2)


def test_reliability_diagram_is_a_png(tmp_path):
    probs = _softmax(np.random.default_rng(2).normal(0, 3, size=(200, 10)))
    calibration.reliability_diagram(probs, np.zeros(200, int), tmp_path / "r.png", "synthetic")
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    cfg, result = trained_tiny(tmp_path_factory.mktemp("calibrated"))
    return result, publish_result(cfg, result, force=True)


def test_a_published_version_records_its_calibration_and_serves_it(calibrated):
    """T from the validation split, baked into the TFLite graph: the file answers
    softmax(log(p_keras) / T); the test split's ECE and NLL are recorded before and after."""
    result, directory = calibrated
    block = json.loads((directory / "metadata.json").read_text())["calibration"]
    assert block["fitted_on"] == "validation" and block["validation_examples"] == len(result.validation)
    assert block["bins"] == 15 and block["measured_with"] == "tflite"
    temperature = block["temperature"]
    assert temperature == pytest.approx(calibration.fit_temperature(
        predict_probabilities(result.model, result.validation), result.validation.y), rel=1e-4)
    keras = predict_probabilities(result.model, result.test)
    served = LiteRTRunner(directory / "model.tflite").predict(result.test.x)
    np.testing.assert_allclose(served, calibration.temper(keras, temperature), atol=1e-4)
    np.testing.assert_array_equal(served.argmax(1), keras.argmax(1))
    test = block["test"]
    assert test["ece_before"] == pytest.approx(calibration.ece(keras, result.test.y), abs=2e-3)
    assert test["ece_after"] == pytest.approx(calibration.ece(served, result.test.y), abs=1e-4)
    # fitted on another split of 200 images, the NLL on test need not drop, but not by much
    assert test["nll_after"] <= test["nll_before"] + 0.05


def test_calibration_off_exports_the_model_as_it_is(tmp_path):
    from dataclasses import replace
    cfg, result = trained_tiny(tmp_path, epochs=1)
    cfg = replace(cfg, publish=replace(cfg.publish, calibrate=False))
    directory = publish_result(cfg, result, force=True)
    assert "calibration" not in json.loads((directory / "metadata.json").read_text())
    np.testing.assert_allclose(LiteRTRunner(directory / "model.tflite").predict(result.test.x),
                               predict_probabilities(result.model, result.test), atol=1e-4)


def _scores(ece):
    return {"tflite": Score(("a", "b"), ((5, 0), (0, 5)), ece=ece, nll=0.1)}


def test_the_retrain_calibration_rule_refuses_a_clearly_worse_ece_and_passes_an_equal_one():
    rule = CalibrationNotWorse(served_ece=0.02, tolerance=0.01)
    same = rule.judge(_scores(0.02), None, None)
    assert same.passed and same.policy == "calibration_check"
    assert rule.judge(_scores(0.0299), None, None).passed       # within the tolerance
    worse = rule.judge(_scores(0.05), None, None)
    assert not worse.passed and worse.exit_code == EXIT_WORSE and "ECE 0.0500" in worse.reason
    assert worse.record["delta"] == pytest.approx(0.03)
    assert rule.judge(_scores(None), None, None).passed          # nothing measured: nothing to compare
