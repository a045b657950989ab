"""Test-time augmentation inside the exported graphs (training/publish/tta.py, ``publish.tta``):
which views a config gets, the views as numpy makes them independently, and the SavedModel and
TFLite files answering the mean over the views of the plain model's probabilities (temperature
and energy included), published with a ``tta`` block and a temperature fitted on those means."""
import json

import numpy as np
import pytest

from artifact.litert import LiteRTRunner
from artifact.saved_model import SavedModelRunner
from support.builders import fixture_data, tiny_config
from support.views import NUMPY_VIEWS, shifted

from training.config import ConfigError, PublishConfig, load_config
from training.keras2 import keras
from training.models.registry import build_for_experiment
from training.publish import calibration, tta
from training.publish.export import export_files


def test_shifted_moves_content_and_fills_zeros():
    x = np.arange(1, 10, dtype=np.uint8).reshape(1, 3, 3, 1)
    assert shifted(x, 1, 0)[0, :, :, 0].tolist() == [[0, 0, 0], [1, 2, 3], [4, 5, 6]]
    assert shifted(x, -1, 0)[0, :, :, 0].tolist() == [[4, 5, 6], [7, 8, 9], [0, 0, 0]]
    assert shifted(x, 0, 1)[0, :, :, 0].tolist() == [[0, 1, 2], [0, 4, 5], [0, 7, 8]]
    assert shifted(x, 0, -1)[0, :, :, 0].tolist() == [[2, 3, 0], [5, 6, 0], [8, 9, 0]]


def names(publish_overrides=(), augment_overrides=(), side=28):
    cfg = load_config(None, ["publish.tta=true", *publish_overrides, *augment_overrides])
    return [v.name for v in tta.views(cfg.publish, cfg.augment, side)]


def test_views_follow_the_training_augmentation():
    assert names() == ["identity", "flip", "up1", "down1", "left1", "right1"]
    # a folder of digits or letters trains without flips: no mirrored view
    assert names(augment_overrides=["augment.flip=false"]) == ["identity", "up1", "down1", "left1", "right1"]
    assert names(["publish.tta_shift=0"]) == ["identity", "flip"]
    assert names(["publish.tta_shift=2"])[2:] == ["up2", "down2", "left2", "right2"]
    assert names(augment_overrides=["augment.translate=0"]) == ["identity", "flip"]
    assert tta.views(PublishConfig(), load_config().augment, 28) == ()       # off by default
    with pytest.raises(ConfigError, match="tta_shift"):                      # 10% of 28 px is 2.8 px
        names(["publish.tta_shift=3"])


@pytest.mark.parametrize("overrides", [["augment.enabled=false"], ["augment.flip=false", "augment.translate=0"],
                                       ["augment.flip=false", "publish.tta_shift=0"]])
def test_tta_without_a_view_to_average_is_a_config_error(overrides):
    with pytest.raises(ConfigError, match="publish.tta"):
        load_config(None, ["publish.tta=true", *overrides])
    load_config(None, overrides)                                             # fine with TTA off


def test_a_negative_shift_is_a_config_error():
    with pytest.raises(ConfigError, match="publish.tta_shift"):
        load_config(None, ["publish.tta_shift=-1"])


def test_the_graph_views_equal_the_numpy_views():
    from training.keras2 import tf
    chosen = tta.views(PublishConfig(tta=True), load_config().augment, 28)
    x = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1), dtype=np.uint8)
    stacked = tta.stack(tf.constant(x), chosen).numpy().reshape(len(chosen), *x.shape)
    for view, got in zip(chosen, stacked):
        np.testing.assert_array_equal(got, NUMPY_VIEWS[view.name](x), err_msg=view.name)


def _tiny_model():
    cfg = tiny_config(None)
    train, _, test = fixture_data(cfg)
    keras.utils.set_random_seed(0)
    return build_for_experiment(cfg, train.input_shape, len(train.class_names)), train, test


def expected(model, x: np.ndarray, view_names: list, temperature: float = 1.0) -> tuple:
    """(probabilities, energies): the plain model on each numpy view, averaged over the views;
    the temperature on the mean, each view's energy -T logsumexp(logits / T)."""
    both = keras.Model(model.input, [model.output, model.get_layer("logits").output])
    probabilities, energies = [], []
    for name in view_names:
        p, logits = (t.numpy().astype(np.float64) for t in both(NUMPY_VIEWS[name](x) / 255.0, training=False))
        probabilities.append(p)
        top = (logits / temperature).max(axis=1)
        energies.append(-temperature * (top + np.log(np.exp(logits / temperature - top[:, None]).sum(axis=1))))
    return calibration.temper(np.mean(probabilities, axis=0), temperature), np.mean(energies, axis=0)


def test_exported_graphs_answer_the_tempered_mean_of_the_views(tmp_path):
    """SavedModel and TFLite (builtin ops only: the converter has no Flex ops to fall back on)
    answer softmax(log(mean of the views' probabilities) / T) and the mean of the views' energies."""
    model, train, test = _tiny_model()
    chosen = tta.views(PublishConfig(tta=True), load_config().augment, 28)
    meta = export_files(tmp_path, model, name="t", class_names=train.class_names, color_mode="L",
                        temperature=2.0, views=chosen)
    assert meta.extra["tta"]["views"] == ["identity", "flip", "up1", "down1", "left1", "right1"]
    x = test.x[:40]
    want_p, want_e = expected(model, x, meta.extra["tta"]["views"], 2.0)
    plain_p, _ = expected(model, x, ["identity"], 2.0)
    assert np.abs(want_p - plain_p).max() > 1e-3          # the views change the answer: the check can fail
    for runner in (SavedModelRunner(tmp_path / "saved_model"), LiteRTRunner(tmp_path / "model.tflite")):
        p, e = runner.predict_energy(x)
        np.testing.assert_allclose(p, want_p, atol=2e-5)
        np.testing.assert_allclose(e, want_e, atol=2e-4)


def test_publish_records_the_views_and_fits_the_temperature_on_their_mean(tmp_path):
    from training.publish.release import publish_version
    cfg = tiny_config(tmp_path, "publish.tta=true", "publish.tta_shift=0")
    model, train, test = _tiny_model()
    _, validation, _ = fixture_data(cfg)
    directory = publish_version(cfg, model, test, extra={}, force=True, validation=validation)
    meta = json.loads((directory / "metadata.json").read_text())
    assert meta["tta"] == {"views": ["identity", "flip"], "combine": "mean of the views' softmax probabilities",
                           "in_graph": True}
    assert meta["config"]["publish"]["tta"] is True
    mean, _ = expected(model, validation.x, ["identity", "flip"])
    assert meta["calibration"]["temperature"] == pytest.approx(calibration.fit_temperature(mean, validation.y),
                                                               rel=1e-3)
    served = LiteRTRunner(directory / "model.tflite").predict(test.x)
    want, _ = expected(model, test.x, ["identity", "flip"], meta["calibration"]["temperature"])
    np.testing.assert_allclose(served, want, atol=2e-5)
    assert meta["metrics"]["tflite"]["accuracy"] == round(float(np.mean(want.argmax(1) == test.y)), 4)
