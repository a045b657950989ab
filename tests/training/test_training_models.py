import numpy as np
import pytest
from training.keras2 import keras

import training.transfer.pipeline  # noqa: F401  (registers the transfer builder, so every builder is tested)
from training.config import ModelConfig, load_config
from training.models.cnn import initializer_for
from training.models.registry import available, build_model

# The transfer model's backbone brings its own BatchNorm and conv biases.
PROJECT_CNNS = [name for name in available() if name != "transfer"]


def layers_of(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


@pytest.mark.parametrize("name", available())
def test_every_builder_runs_flat_tf_keras_with_finite_output(name):
    cfg = ModelConfig(name=name, widths=[8, 16], convs_per_stage=1)
    model = build_model(cfg, (28, 28, 1), 10)
    assert isinstance(model, keras.Model)                      # Keras 2, as TF-MOT needs
    assert type(model).__module__.startswith("tf_keras")
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)   # flat
    out = model(np.random.rand(3, 28, 28, 1).astype("float32"), training=False).numpy()
    assert out.shape == (3, 10) and np.all(np.isfinite(out))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    assert model.get_layer("logits") is not None


@pytest.mark.parametrize("name", PROJECT_CNNS)
def test_batch_norm_switch(name):
    with_bn = build_model(ModelConfig(name=name, widths=[8, 16], batch_norm=True), (28, 28, 1), 10)
    without = build_model(ModelConfig(name=name, widths=[8, 16], batch_norm=False), (28, 28, 1), 10)
    assert len(layers_of(with_bn, keras.layers.BatchNormalization)) > 0
    assert len(layers_of(without, keras.layers.BatchNormalization)) == 0
    # Conv -> BN -> activation: convs feeding BN carry no bias of their own.
    assert all(not c.use_bias for c in layers_of(with_bn, keras.layers.Conv2D))
    assert all(c.use_bias for c in layers_of(without, keras.layers.Conv2D))


def test_dropout_rates_per_stage_and_head():
    cfg = ModelConfig(widths=[8, 16, 32], dropout=[0.1, 0.25, 0.4], head_dropout=0.5)
    model = build_model(cfg, (28, 28, 1), 10)
    rates = {layer.name: layer.rate for layer in layers_of(model, keras.layers.Dropout)}
    assert rates == {"s0_dropout": 0.1, "s1_dropout": 0.25, "s2_dropout": 0.4, "head_dropout": 0.5}
    none = build_model(ModelConfig(widths=[8, 16], dropout=0.0, head_dropout=0.0), (28, 28, 1), 10)
    assert layers_of(none, keras.layers.Dropout) == []


@pytest.mark.parametrize("activation, expected", [
    ("relu", keras.initializers.HeNormal), ("elu", keras.initializers.HeNormal),
    ("tanh", keras.initializers.GlorotUniform), ("sigmoid", keras.initializers.GlorotUniform),
    ("selu", keras.initializers.LecunNormal)])
def test_auto_initializer_follows_activation(activation, expected):
    assert isinstance(initializer_for(activation), expected)
    model = build_model(ModelConfig(widths=[8], activation=activation), (28, 28, 1), 10)
    convs = layers_of(model, keras.layers.Conv2D)
    assert convs and all(isinstance(c.kernel_initializer, expected) for c in convs)
    assert model.get_layer("s0b0_act").activation.__name__ == activation
    # The softmax classifier is Glorot whatever the hidden activation.
    assert isinstance(model.get_layer("logits").kernel_initializer, keras.initializers.GlorotUniform)


def test_explicit_initializer_wins():
    model = build_model(ModelConfig(widths=[8], activation="relu", initializer="lecun_uniform"), (28, 28, 1), 10)
    assert all(isinstance(c.kernel_initializer, keras.initializers.LecunUniform)
               for c in layers_of(model, keras.layers.Conv2D))


def test_naive_initializer_is_a_small_fixed_normal():
    model = build_model(ModelConfig(widths=[8], activation="tanh", initializer="naive"), (28, 28, 1), 10)
    kernels = [c.kernel_initializer for c in layers_of(model, keras.layers.Conv2D)]
    assert kernels and all(isinstance(k, keras.initializers.RandomNormal) and k.stddev == 0.01 for k in kernels)


def test_unknown_builder_and_activation_are_clear():
    with pytest.raises(ValueError, match="available: cnn, resnet"):
        build_model(ModelConfig(name="vgg99"), (28, 28, 1), 10)
    with pytest.raises(ValueError, match="set model.initializer"):
        initializer_for("softplus")


def test_presets_build_the_expected_models():
    default = build_model(load_config("default").model, (28, 28, 1), 10)
    accurate = build_model(load_config("accurate").model, (28, 28, 1), 10)
    resnet = build_model(ModelConfig(name="resnet", widths=[8, 16], convs_per_stage=1), (28, 28, 1), 10)
    # accurate trains the default's network longer, with more augmentation
    assert default.name == accurate.name == "cnn" and accurate.count_params() == default.count_params()
    assert default.count_params() < 500_000      # the committed model stays small
    assert resnet.name == "resnet" and any(isinstance(l, keras.layers.Add) for l in resnet.layers)


def test_head_pool_switch():
    avg = build_model(ModelConfig(widths=[8, 16], head_pool="avg"), (28, 28, 1), 10)
    flat = build_model(ModelConfig(widths=[8, 16], head_pool="flatten", dense_units=32), (28, 28, 1), 10)
    assert layers_of(avg, keras.layers.GlobalAveragePooling2D) and not layers_of(avg, keras.layers.Flatten)
    assert layers_of(flat, keras.layers.Flatten) and not layers_of(flat, keras.layers.GlobalAveragePooling2D)
    assert flat.get_layer("pool").output_shape == (None, 7 * 7 * 16)   # 28 -> 14 -> head max-pool 7
    with pytest.raises(ValueError, match="head_pool"):
        build_model(ModelConfig(widths=[8], head_pool="max"), (28, 28, 1), 10)
