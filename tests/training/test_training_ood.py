"""Out-of-distribution scores (training/publish/ood.py) and the Monte Carlo dropout signature
export writes (training/publish/export.py, run by artifact/saved_model.py)."""
import numpy as np
import pytest

from artifact.metadata import MetadataError
from artifact.saved_model import SavedModelRunner
from support.builders import fixture_data, tiny_config

from training.keras2 import keras
from training.models.registry import build_for_experiment
from training.publish import ood
from training.publish.export import export_files, mc_dropout_ready


def test_auroc_and_fpr_read_foreign_as_positive():
    inside, foreign = np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.5, 0.6, 0.7])
    assert ood.auroc(inside, foreign) == 1.0
    assert ood.auroc(foreign, inside) == 0.0
    assert ood.fpr_at_tpr(inside, foreign) == 0.0
    assert ood.fpr_at_tpr(inside, np.array([0.0, 0.05])) == 1.0    # every foreign image accepted
    same = np.linspace(0, 1, 101)
    assert ood.auroc(same, same) == pytest.approx(0.5)
    # the threshold accepts 95% of the in-distribution scores it was chosen on
    limit = ood.accept_threshold(same)
    assert np.mean(same <= limit) == pytest.approx(0.95, abs=0.01)


def test_energy_and_max_probability_rank_flat_logits_as_foreign():
    confident, flat = [10.0, 0.0, 0.0], [0.1, 0.0, 0.05]
    logits = np.array([confident, flat])
    e = ood.energy(logits)
    assert e[1] > e[0]
    assert e == pytest.approx(-np.log(np.exp(logits).sum(axis=1)))
    m = ood.max_probability(ood.softmax(logits))
    assert m[1] > m[0]


def test_mahalanobis_is_small_near_a_class_mean_and_large_far_away():
    rng = np.random.default_rng(0)
    means = np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 0.0]])
    labels = np.repeat([0, 1], 500)
    features = means[labels] + rng.normal(size=(1000, 3)) * [1.0, 1.0, 0.01]
    score = ood.Mahalanobis(features, labels)
    near, far_along_thin_axis = score(np.array([[5.0, 5.0, 0.0], [0.0, 0.0, 0.5]]))
    assert near < 1.0
    assert far_along_thin_axis > 100.0      # 0.5 is 50 standard deviations on the thin axis


def _tiny_model(*overrides):
    cfg = tiny_config(None, *overrides)
    train, _, _ = fixture_data(cfg)
    keras.utils.set_random_seed(0)
    model = build_for_experiment(cfg, train.input_shape, len(train.class_names))
    # moving statistics far from any batch's: a batch norm left in training mode shows
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(layer.moving_mean - 0.5)
            layer.moving_variance.assign(layer.moving_variance * 4.0)
    return model, train


def test_export_adds_mc_dropout_with_batch_norm_in_inference_mode(tmp_path):
    model, train = _tiny_model("model.dropout=0", "model.head_dropout=0.5", "model.dense_units=16")
    assert mc_dropout_ready(model)
    export_files(tmp_path, model, name="t", class_names=train.class_names, color_mode="L", temperature=2.0)
    runner = SavedModelRunner(tmp_path / "saved_model")
    assert runner.has_mc_dropout
    x = train.x[:16]

    # the serving signature is untouched: deterministic, temperature baked in
    assert np.array_equal(runner(x), runner(x))
    assert np.allclose(runner(x), ood.softmax(np.log(model(x / 255.0, training=False).numpy()), 2.0), atol=1e-5)

    mean, std = runner.mc_dropout(x, 100)
    assert mean.shape == std.shape == (16, 10)
    assert np.allclose(mean.sum(axis=1), 1.0, atol=1e-4)
    assert std.max() > 1e-3                                    # the passes differ: dropout is on
    # the same distribution as the Keras model's head passes with batch norm in inference mode
    keras_mean = ood.mc_passes(model, x, 400, seeds=[0])[0].mean(axis=0)
    gap = np.abs(mean - keras_mean).max()
    assert gap < 0.05
    # ...and not what a batch norm in training mode (batch statistics) would give (last: this
    # call also moves the model's moving statistics)
    wrong = np.mean([model(x / 255.0, training=True).numpy() for _ in range(20)], axis=0)
    assert np.abs(wrong - keras_mean).max() > 4 * gap


def test_a_model_without_dropout_exports_no_mc_signature(tmp_path):
    model, train = _tiny_model("model.dropout=0", "model.head_dropout=0")
    assert not mc_dropout_ready(model)
    export_files(tmp_path, model, name="t", class_names=train.class_names, color_mode="L")
    runner = SavedModelRunner(tmp_path / "saved_model")
    assert not runner.has_mc_dropout
    with pytest.raises(MetadataError, match="mc_dropout"):
        runner.mc_dropout(train.x[:2], 5)


def test_mc_passes_reject_a_bad_count(tmp_path):
    model, train = _tiny_model("model.dropout=0", "model.head_dropout=0.5")
    export_files(tmp_path, model, name="t", class_names=train.class_names, color_mode="L")
    runner = SavedModelRunner(tmp_path / "saved_model")
    for bad in (0, 101, 2.5, True):
        with pytest.raises(ValueError, match="passes"):
            runner.mc_dropout(train.x[:2], bad)


def test_outputs_read_the_penultimate_features_and_logits_and_mc_passes_are_seeded():
    model, train = _tiny_model("model.dropout=0", "model.head_dropout=0.5", "model.dense_units=16")
    assert ood.penultimate_layer(model).name == "dense_act"      # before the head's dropout
    x = train.x[:8]
    out = ood.outputs(model, x)
    assert out["features"].shape == (8, 16)
    assert np.allclose(ood.softmax(out["logits"]), model(x / 255.0, training=False).numpy(), atol=1e-5)
    first, second = ood.mc_passes(model, x, 5, seeds=[0, 1])
    assert first.shape == (5, 8, 10)
    assert np.array_equal(first, ood.mc_passes(model, x, 5, seeds=[0])[0])   # a seed repeats itself
    assert not np.array_equal(first, second)


def test_pruned_and_quantization_aware_models_are_not_mc_dropout_ready():
    # their wrappers update masks or ranges in training mode, and hide batch norm from inference_batch_norm
    from training.keras2 import tfmot
    model, _ = _tiny_model("model.dropout=0", "model.head_dropout=0.5")
    assert mc_dropout_ready(model)
    assert not mc_dropout_ready(tfmot.quantization.keras.quantize_model(model))
    assert not mc_dropout_ready(tfmot.sparsity.keras.prune_low_magnitude(model))


# ---------------------------------------------------------------- the energy output

def test_export_adds_an_energy_output_equal_to_ood_energy_with_the_temperature(tmp_path):
    """Both runners read the energy output by name; it is ood.energy of the Keras logits at the
    baked-in temperature, and the probabilities output is what it was without it."""
    from artifact.litert import LiteRTRunner
    from training.publish.export import convert_tflite, energy_ready, save_saved_model
    model, train = _tiny_model("model.dropout=0", "model.head_dropout=0.5", "model.dense_units=16")
    assert energy_ready(model)
    export_files(tmp_path, model, name="t", class_names=train.class_names, color_mode="L", temperature=2.0)
    x = train.x[:64]
    expected = ood.energy(ood.outputs(model, x)["logits"], 2.0)
    assert not np.allclose(expected, ood.energy(ood.outputs(model, x)["logits"]), atol=1e-3)  # T matters
    # the same graph without the output: the probabilities are unchanged, bit for bit
    save_saved_model(model, train.input_shape, tmp_path / "plain", 2.0)
    (tmp_path / "plain.tflite").write_bytes(convert_tflite(tmp_path / "plain", calibrated=True))
    runners = [(SavedModelRunner(tmp_path / "saved_model"), SavedModelRunner(tmp_path / "plain")),
               (LiteRTRunner(tmp_path / "model.tflite"), LiteRTRunner(tmp_path / "plain.tflite"))]
    for runner, plain in runners:
        assert runner.has_energy and not plain.has_energy
        probabilities, energy = runner.run(x)
        assert energy.shape == (64,) and probabilities.shape == (64, 10)
        np.testing.assert_allclose(energy, expected, atol=1e-4)
        assert np.array_equal(probabilities, plain(x))
        assert plain.run(x)[1] is None
        batched, batched_energy = runner.predict_energy(x, batch_size=16)
        np.testing.assert_allclose(batched_energy, expected, atol=1e-4)
        np.testing.assert_allclose(batched, probabilities, atol=1e-6)


def test_an_int8_export_keeps_a_float_energy_output(tmp_path):
    from artifact.litert import LiteRTRunner
    model, train = _tiny_model("model.dropout=0", "model.head_dropout=0")
    representative = lambda: (train.x[i:i + 8] for i in range(0, 64, 8))    # noqa: E731
    export_files(tmp_path, model, name="t", class_names=train.class_names, color_mode="L",
                 quantization="int8", representative=representative)
    runner = LiteRTRunner(tmp_path / "model.tflite")
    probabilities, energy = runner.run(train.x[:32])
    expected = ood.energy(ood.outputs(model, train.x[:32])["logits"])
    assert runner.has_energy and probabilities.shape == (32, 10)
    # int8 weights and activations: close to the float model's energy, not equal
    assert np.corrcoef(energy, expected)[0, 1] > 0.9


def test_models_without_a_plain_logits_layer_get_no_energy_output():
    from training.keras2 import tfmot
    from training.publish.export import energy_ready
    model, _ = _tiny_model("model.dropout=0", "model.head_dropout=0")
    assert energy_ready(model)
    assert not energy_ready(tfmot.quantization.keras.quantize_model(model))
    inputs = keras.Input((4,))
    assert not energy_ready(keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs)))
