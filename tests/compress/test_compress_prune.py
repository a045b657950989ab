"""Pruning reaches the requested sparsity, strip_pruning keeps it, and so does PQAT."""
import numpy as np
import pytest
from training.keras2 import keras

from support.builders import fixture_data, tiny_config
from training.models.registry import build_model
from training.compress.prune import PruneSettings, make_schedule, prune, sparsity_report, wrap_for_pruning
from training.compress.quantize import QATSettings, qat


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    cfg = tiny_config(tmp_path_factory.mktemp("prune"), batch_size=64)
    train, val, test = fixture_data(cfg)
    keras.utils.set_random_seed(0)
    return cfg, train.take(640), build_model(cfg.model, train.input_shape, 10)


@pytest.fixture(scope="module")
def pruned(setup):
    cfg, train, model = setup
    stripped, history = prune(model, train, cfg, PruneSettings(target=0.75, epochs=2, keep_ends=False))
    return stripped, history


def test_pruning_reaches_the_target_and_strip_keeps_it(setup, pruned):
    _, _, source = setup
    stripped, history = pruned
    report = sparsity_report(stripped)
    assert set(report["layers"]) == {"s0b0_conv", "s1b0_conv", "logits"}
    for name, value in report["layers"].items():
        assert value == pytest.approx(0.75, abs=0.01), name
    assert report["nonzero_params"] < report["params"]
    assert all("prune" not in type(l).__name__.lower() for l in stripped.layers)
    assert sparsity_report(source)["kernels"] < 0.01     # the source model is untouched
    assert len(history["loss"]) == 2


def test_constant_schedule_and_two_four_structure(setup):
    cfg, train, model = setup
    stripped, _ = prune(model, train.take(128), cfg,
                        PruneSettings(target=0.5, schedule="constant", m_by_n=(2, 4), epochs=1, keep_ends=False))
    kernel = stripped.get_layer("s1b0_conv").kernel.numpy()          # [h, w, in=8, out]
    groups = np.moveaxis(kernel, 2, -1).reshape(-1, 4)               # 4 consecutive input channels
    assert np.all((groups == 0).sum(axis=1) >= 2)


def test_first_and_last_layers_stay_dense_by_default(setup):
    _, _, model = setup
    wrapped = wrap_for_pruning(model, PruneSettings(), 10)
    kinds = {layer.name: type(layer).__name__ for layer in wrapped.layers}
    assert kinds["prune_low_magnitude_s1b0_conv"] == "PruneLowMagnitude"
    assert kinds["s0b0_conv"] == "Conv2D" and kinds["logits"] == "Dense"


def test_dense_block_sparsity_zeros_whole_blocks(setup):
    cfg, train, model = setup
    stripped, _ = prune(model, train.take(128), cfg,
                        PruneSettings(target=0.5, epochs=1, keep_ends=False, dense_block=(4, 1)))
    kernel = stripped.get_layer("logits").kernel.numpy()              # [in=16, out=10]
    blocks = np.abs(kernel).reshape(4, 4, -1).sum(axis=1)             # 4 consecutive inputs per output
    zeros = kernel == 0
    assert zeros.mean() == pytest.approx(0.5, abs=0.05)
    assert np.array_equal(np.repeat(blocks == 0, 4, axis=0), zeros)   # zeros come in whole blocks


def test_schedule_updates_the_mask_at_end_step():
    for end in (7, 50, 844, 2110):
        schedule = make_schedule(PruneSettings(target=0.6), end)
        should, sparsity = schedule(np.int64(end))
        assert bool(should) and float(sparsity) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="sparsity"):
        make_schedule(PruneSettings(target=1.0), 10)


def test_pqat_keeps_sparsity_and_plain_qat_does_not(setup, pruned):
    cfg, train, _ = setup
    stripped, _ = pruned
    kept, _ = qat(stripped, train.take(256), cfg, QATSettings(epochs=1, learning_rate=1e-3, preserve_sparsity=True))
    assert sparsity_report(kept)["kernels"] == pytest.approx(0.75, abs=0.01)
    lost, _ = qat(stripped, train.take(256), cfg, QATSettings(epochs=1, learning_rate=1e-3))
    assert sparsity_report(lost)["kernels"] < 0.5


def test_a_ramp_outside_zero_to_one_is_refused(setup):
    cfg, train, model = setup
    with pytest.raises(ValueError, match="ramp"):
        prune(model, train, cfg, PruneSettings(ramp=0.0))


def test_batch_norm_recalibration_uses_the_data_mean(setup):
    from training.compress.finetune import recalibrate_batch_norm
    from training.data.pipeline import to_float
    cfg, train, model = setup
    model = keras.models.clone_model(model)
    bn = model.get_layer("s0b0_bn")
    n = bn.gamma.shape[0]
    bn.set_weights([np.ones(n), np.zeros(n), np.full(n, 5.0), np.full(n, 100.0)])   # stale
    data = train.take(256)
    recalibrate_batch_norm(model, data, batch_size=64, batches=4)
    conv = keras.Model(model.input, model.get_layer("s0b0_conv").output)
    features = conv(to_float(data.x)).numpy().reshape(-1, n)
    # Data order differs (shuffled batches), the mean of batch means does not.
    np.testing.assert_allclose(bn.moving_mean.numpy(), features.mean(0), rtol=1e-3, atol=1e-4)
    assert bn.momentum == pytest.approx(0.99)
