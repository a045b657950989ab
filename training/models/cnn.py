"""The project's CNNs: a VGG-style CNN and a compact ResNet, and their shared blocks.

Every conv/dense block is ``Conv2D(use_bias=not bn) -> BatchNormalization -> Activation``
so TF-MOT can fold BN and quantize it; no model is nested inside another and no
preprocessing layer is in the graph (scaling lives in the export wrapper).
Models take float images in [0, 1] and end in a softmax named ``probabilities``
whose input, the layer ``logits``, distillation reads.
"""
from __future__ import annotations

from training.config import ExperimentConfig
from training.keras2 import keras, tf

# He (Kaiming) init keeps activation variance for ReLU-like units that zero half
# their inputs; Glorot (Xavier) suits symmetric saturating units; LeCun for SELU.
HE_ACTIVATIONS = {"relu", "relu6", "elu", "leaky_relu", "gelu", "swish", "silu", "mish"}
GLOROT_ACTIVATIONS = {"tanh", "sigmoid", "softsign", "linear", "hard_sigmoid"}

_BUILDERS: dict = {}



# The textbook counter-example (a fixed small std whatever the fan-in): signals shrink layer
# by layer without batch norm, so the initialisation ablation study has a baseline to beat.
NAIVE_STDDEV = 0.01


@keras.utils.register_keras_serializable("training")
class Dirac(keras.initializers.Initializer):
    """A 3x3 conv kernel that starts as the identity on its first min(in, out) channels.

    Output channel i < min(in, out) gets a single 1 at the centre tap from input channel i
    and zeros elsewhere, so at initialisation it copies its input channel; the remaining
    output channels (a widening layer's extra ones) are drawn from ``base``, the activation's
    automatic initializer. Identity ("Dirac") initialisation lets a deep plain network start
    out as a shallow one whose signal passes through unchanged (Zagoruyko and Komodakis,
    DiracNets, 2017; PyTorch's ``nn.init.dirac_``). It applies only to 3x3 kernels: dense
    kernels change the representation's shape, and the ResNet's 1x1 projections sit on the
    shortcut, which already carries the identity, so those take ``base`` as they are."""

    def __init__(self, base="he_normal"):
        self.base = keras.initializers.get(base)

    def __call__(self, shape, dtype=None, **kwargs):
        kernel = self.base(shape, dtype=dtype, **kwargs)
        if len(shape) != 4 or tuple(shape[:2]) != (3, 3):
            return kernel
        same = min(shape[2], shape[3])
        identity = tf.reshape(tf.one_hot(4, 9, dtype=kernel.dtype), (3, 3, 1, 1)) * tf.eye(
            shape[2], same, dtype=kernel.dtype)                        # (3, 3, in, min(in, out))
        return tf.concat([identity, kernel[..., same:]], axis=-1)

    def get_config(self):
        return {"base": keras.initializers.serialize(self.base)}


def initializer_for(activation: str, choice: str = "auto"):
    """The kernel initializer for layers feeding ``activation``."""
    if choice == "dirac":
        return Dirac(initializer_for(activation, "auto"))
    if choice == "naive":
        return keras.initializers.RandomNormal(stddev=NAIVE_STDDEV)
    if choice != "auto":
        return keras.initializers.get(choice)
    if activation in HE_ACTIVATIONS:
        return keras.initializers.HeNormal()
    if activation == "selu":
        return keras.initializers.LecunNormal()
    if activation in GLOROT_ACTIVATIONS:
        return keras.initializers.GlorotUniform()
    raise ValueError(f"no automatic initializer for activation '{activation}'; "
                     "set model.initializer explicitly")


def _activation(name: str, label: str) -> keras.layers.Layer:
    if name == "relu6":
        return keras.layers.ReLU(6.0, name=label)
    if name == "leaky_relu":
        return keras.layers.LeakyReLU(name=label)
    return keras.layers.Activation(name, name=label)


def conv_bn_act(x, filters: int, cfg, name: str, strides: int = 1, kernel: int = 3, activate=True):
    x = keras.layers.Conv2D(
        filters, kernel, strides=strides, padding="same", use_bias=not cfg.batch_norm,
        kernel_initializer=initializer_for(cfg.activation, cfg.initializer),
        kernel_regularizer=keras.regularizers.l2(cfg.weight_decay) if cfg.weight_decay else None,
        name=f"{name}_conv")(x)
    if cfg.batch_norm:
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return _activation(cfg.activation, f"{name}_act")(x) if activate else x


def _per_stage(value, stage: int):
    """A number for every stage, or a list whose last entry repeats."""
    values = value if isinstance(value, list) else [value]
    return values[min(stage, len(values) - 1)] if values else 0


def _stage_dropout(cfg, stage: int) -> float:
    return float(_per_stage(cfg.dropout, stage))


def classifier_head(x, cfg, num_classes: int):
    """Pooling -> [dense block] -> dropout -> logits -> softmax.

    ``avg`` (global average pooling) is position-free and tiny; ``flatten`` keeps
    where things are (sleeve vs collar matters on Fashion-MNIST) after one more
    2x2 max-pool that bounds the dense layer's size.
    """
    if cfg.head_pool == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    elif cfg.head_pool == "flatten":
        x = keras.layers.MaxPooling2D(name="head_maxpool")(x)
        x = keras.layers.Flatten(name="pool")(x)
    else:
        raise ValueError(f"unknown model.head_pool '{cfg.head_pool}' (avg, flatten)")
    if cfg.dense_units:
        x = keras.layers.Dense(cfg.dense_units, use_bias=not cfg.batch_norm,
                               kernel_initializer=initializer_for(cfg.activation, cfg.initializer),
                               name="dense")(x)
        if cfg.batch_norm:
            x = keras.layers.BatchNormalization(name="dense_bn")(x)
        x = _activation(cfg.activation, "dense_act")(x)
    if cfg.head_dropout:
        x = keras.layers.Dropout(cfg.head_dropout, name="head_dropout")(x)
    # The softmax output gets Glorot whatever the hidden activation is.
    x = keras.layers.Dense(num_classes, kernel_initializer="glorot_uniform", name="logits")(x)
    # float32 whatever the policy: under mixed_bfloat16 (train.precision) a bfloat16 softmax would
    # round small probabilities and the loss' log with them
    return keras.layers.Activation("softmax", dtype="float32", name="probabilities")(x)


def build_cnn(experiment: ExperimentConfig, input_shape: tuple, num_classes: int) -> keras.Model:
    """Plain VGG-style CNN: stages of conv blocks, max-pool and dropout between stages."""
    cfg = experiment.model
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    for stage, width in enumerate(cfg.widths):
        for block in range(_per_stage(cfg.convs_per_stage, stage)):
            x = conv_bn_act(x, width, cfg, f"s{stage}b{block}")
        if stage < len(cfg.widths) - 1:
            x = keras.layers.MaxPooling2D(name=f"s{stage}_pool")(x)
        rate = _stage_dropout(cfg, stage)
        if rate:
            x = keras.layers.Dropout(rate, name=f"s{stage}_dropout")(x)
    return keras.Model(inputs, classifier_head(x, cfg, num_classes), name="cnn")


def build_resnet(experiment: ExperimentConfig, input_shape: tuple, num_classes: int) -> keras.Model:
    """Compact pre-pooling ResNet (basic blocks); each later stage halves the resolution."""
    cfg = experiment.model
    inputs = keras.Input(input_shape, name="image")
    x = conv_bn_act(inputs, cfg.widths[0], cfg, "stem")
    for stage, width in enumerate(cfg.widths):
        for block in range(_per_stage(cfg.convs_per_stage, stage)):
            name = f"s{stage}b{block}"
            strides = 2 if (stage > 0 and block == 0) else 1
            shortcut = x
            y = conv_bn_act(x, width, cfg, f"{name}a", strides=strides)
            y = conv_bn_act(y, width, cfg, f"{name}b", activate=False)
            if strides != 1 or shortcut.shape[-1] != width:
                shortcut = conv_bn_act(x, width, cfg, f"{name}_proj", strides=strides,
                                       kernel=1, activate=False)
            x = keras.layers.Add(name=f"{name}_add")([shortcut, y])
            x = _activation(cfg.activation, f"{name}_out")(x)
        rate = _stage_dropout(cfg, stage)
        if rate:
            x = keras.layers.Dropout(rate, name=f"s{stage}_dropout")(x)
    return keras.Model(inputs, classifier_head(x, cfg, num_classes), name="resnet")
