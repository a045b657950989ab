"""Pruning reaches the requested sparsity, strip_pruning keeps it, and so does PQAT."""
import numpy as np
import pytest
import tf_keras as keras

from compress_helpers import fixture_data, tiny_config
from training.models import build_model
from training.prune import PruneSettings, make_schedule, prune, sparsity_report
from training.quantize import QATSettings, qat


@pytest.fixture(scope="module")
def setup():
    cfg = tiny_config()
    cfg.train.batch_size = 64
    train, val, test = fixture_data(cfg)
    keras.utils.set_random_seed(0)
    return cfg, train.take(640), build_model(cfg.model, train.input_shape, 10)


@pytest.fixture(scope="module")
def pruned(setup):
    cfg, train, model = setup
    stripped, history = prune(model, train, cfg, PruneSettings(target=0.75, epochs=2))
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
                        PruneSettings(target=0.5, schedule="constant", m_by_n=(2, 4), epochs=1))
    kernel = stripped.get_layer("s1b0_conv").kernel.numpy()          # [h, w, in=8, out]
    groups = np.moveaxis(kernel, 2, -1).reshape(-1, 4)               # 4 consecutive input channels
    assert np.all((groups == 0).sum(axis=1) >= 2)


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
