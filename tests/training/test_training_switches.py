"""Three training switches: the weight average (train.ema_decay), Nesterov SGD with the triangular
schedule (train.nesterov, train.schedule=triangular) and identity initialisation (model.initializer=dirac).

The average is checked against one computed here from the raw weights of every step: the returned
model, the best-epoch checkpoint, validation and the exported SavedModel all hold it, not the last
step's weights."""
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from artifact.metadata import INPUT_NAME, OUTPUT_NAME

from training.config import ConfigError, ModelConfig, TrainConfig, load_config
from training.fit.average import ramped
from training.data.pipeline import validation_batches
from training.fit.train import train
from training.fit.trainer import Triangular, learning_rate, make_optimizer
from training.keras2 import keras, tf
from training.models.cnn import Dirac
from training.models.registry import build_model
from training.publish.export import export_files

from support.builders import tiny_config


class RawWeights(keras.callbacks.Callback):
    """The trainable weights at the start and after every optimizer step (a caller's callback runs
    after the average's, between steps, while the model holds the raw weights)."""

    def on_train_begin(self, logs=None):
        self.steps = [[v.numpy() for v in self.model.trainable_variables]]

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append([v.numpy() for v in self.model.trainable_variables])


def expected_average(steps: list, decay: float) -> list:
    average = [w.copy() for w in steps[0]]
    for t, weights in enumerate(steps[1:]):
        d = ramped(decay, t)
        average = [a - (1 - d) * (a - w) for a, w in zip(average, weights)]
    return average


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory, fixture_data):
    tmp = tmp_path_factory.mktemp("ema")
    cfg = tiny_config(tmp, "train.ema_decay=0.9", epochs=1)
    raw = RawWeights()
    result = train(cfg, data=fixture_data, callbacks=[raw])
    return cfg, result, raw, tmp


def test_the_trained_model_and_its_checkpoint_hold_the_average_not_the_last_step(ema_run):
    cfg, result, raw, _ = ema_run
    assert len(raw.steps) - 1 == result.budget["optimizer_steps"]
    average = expected_average(raw.steps, 0.9)
    got = [v.numpy() for v in result.model.trainable_variables]
    for g, a in zip(got, average):
        np.testing.assert_allclose(g, a, rtol=1e-4, atol=1e-6)
    # the test can fail: the last step's weights are not the average
    assert max(np.abs(g - w).max() for g, w in zip(got, raw.steps[-1])) > 1e-3
    checkpoint = build_model(cfg.model, result.train.input_shape, 10)
    checkpoint.load_weights(str(result.run_dir / "checkpoints" / "best.h5"))     # what `publish` reads
    for c, g in zip(checkpoint.get_weights(), result.model.get_weights()):
        np.testing.assert_array_equal(c, g)


def test_validation_reads_the_average(ema_run):
    cfg, result, _, _ = ema_run
    loss, acc = result.model.evaluate(validation_batches(result.validation, cfg), verbose=0)   # the average
    assert result.history["val_loss"][-1] == pytest.approx(loss, rel=1e-4)
    assert result.history["val_accuracy"][-1] == pytest.approx(acc, abs=1e-6)


def test_the_exported_graph_serves_the_average(ema_run, fixture_data):
    cfg, result, raw, tmp = ema_run
    last = keras.models.clone_model(result.model)
    last.set_weights(result.model.get_weights())                  # batch-norm statistics as trained
    for variable, value in zip(last.trainable_variables, raw.steps[-1]):
        variable.assign(value)
    export_files(tmp / "export", result.model, name="tiny", class_names=result.train.class_names, color_mode="L")
    serve = tf.saved_model.load(str(tmp / "export" / "saved_model")).signatures["serving_default"]
    pixels = fixture_data[2].x[:32]
    served = serve(**{INPUT_NAME: tf.constant(pixels)})[OUTPUT_NAME].numpy()
    images = pixels.astype("float32") / 255.0
    np.testing.assert_allclose(served, result.model(images, training=False).numpy(), atol=1e-5)
    assert np.abs(served - last(images, training=False).numpy()).max() > 1e-3


def test_the_decay_must_leave_room_to_average():
    with pytest.raises(ConfigError, match="'train.ema_decay' must be in"):
        load_config("tiny", ["train.ema_decay=1"])
    assert ramped(0.999, 0) == pytest.approx(0.1) and ramped(0.9, 1000) == 0.9


def test_pruning_and_qat_fine_tunes_do_not_average(monkeypatch, fixture_data):
    from training.compress import finetune
    seen = {}

    def fake_fit(model, data, settings, **kw):               # what the fine-tune asks the trainer for
        seen["cfg"] = settings
        return SimpleNamespace(history={})
    monkeypatch.setattr(finetune, "fit", fake_fit)
    cfg = tiny_config(None, "train.ema_decay=0.99")
    finetune.fine_tune(None, fixture_data[0], cfg, epochs=1, learning_rate=1e-4, run_dir=None, record={})
    assert seen["cfg"].ema_decay == 0.0 and cfg.train.ema_decay == 0.99


def test_triangular_rises_linearly_then_falls_linearly_to_zero():
    schedule = Triangular(peak=1.0, total_steps=10, warmup_steps=2)
    values = [float(schedule(step)) for step in (0, 1, 2, 6, 9, 10, 50)]
    assert values == pytest.approx([0.5, 1.0, 1.0, 0.5, 0.125, 0.0, 0.0])
    cfg = TrainConfig(schedule="triangular", learning_rate=0.1, warmup_epochs=0.5, epochs=4)
    lr = learning_rate(cfg, steps_per_epoch=10)          # 40 steps, 5 of warm-up
    assert (lr.total_steps, lr.warmup_steps) == (40, 5)
    assert float(lr(4)) == pytest.approx(0.1) and float(lr(22)) == pytest.approx(0.1 * 18 / 35)


def test_sgd_is_nesterov_unless_switched_off():
    sgd = TrainConfig(optimizer="sgd", schedule="constant")
    assert make_optimizer(sgd, 10).nesterov is True
    assert make_optimizer(replace(sgd, nesterov=False), 10).nesterov is False


@pytest.mark.parametrize("channels_in, channels_out", [(4, 6), (6, 4), (5, 5)])
def test_a_dirac_conv_passes_its_input_through_on_the_identity_channels(channels_in, channels_out):
    keras.utils.set_random_seed(0)
    conv = keras.layers.Conv2D(channels_out, 3, padding="same", use_bias=False,
                               kernel_initializer=Dirac(keras.initializers.HeNormal()))
    x = np.random.default_rng(0).normal(size=(2, 7, 7, channels_in)).astype("float32")
    y = conv(x).numpy()
    same = min(channels_in, channels_out)
    np.testing.assert_allclose(y[..., :same], x[..., :same], atol=1e-6)
    if channels_out > same:                              # a widening conv's extra channels are random
        assert np.abs(y[..., same:]).mean() > 0.1


def test_dirac_applies_to_3x3_convs_and_leaves_dense_layers_to_the_activation_init():
    model = build_model(ModelConfig(widths=[8, 16], batch_norm=False, dense_units=12, head_pool="flatten",
                                    initializer="dirac"), (28, 28, 1), 10)
    kernel = model.get_layer("s0b1_conv").kernel.numpy()                  # 8 -> 8: the whole identity
    np.testing.assert_array_equal(kernel[1, 1], np.eye(8))
    assert not kernel[0].any() and not kernel[2].any()
    dense = model.get_layer("dense").kernel.numpy()
    assert 0.2 < dense.std() * np.sqrt(dense.shape[0] / 2) < 5         # He-normal's scale, not an identity
    copy = keras.Model.from_config(model.get_config())                   # serialisable, as float32_copy needs
    assert isinstance(copy.get_layer("s0b1_conv").kernel_initializer, Dirac)
