"""Checks that a model can be pruned or quantized, with errors that say what to change.

TF-MOT's own failures are terse ("Subclassed models are not supported",
"Layer x:<class> is not supported") or name no layer at all, and some only
surface deep inside clone_model. These checks run first and name the layer
and the fix; ``translate`` rewrites whatever TF-MOT still raises.
"""
from __future__ import annotations

import re

from training.keras2 import keras

# Layers the default 8-bit scheme cannot quantize and that have a standard home
# outside the model: preprocessing in tf.data or in the export wrapper.
PREPROCESSING = ("Rescaling", "Normalization", "Resizing", "CenterCrop")
# Activations the 8-bit activation config accepts (Default8BitActivationQuantizeConfig).
QUANTIZABLE_ACTIVATIONS = {"relu", "relu6", "swish", "gelu", "linear", "softmax", "sigmoid", "tanh"}
PRUNABLE = (keras.layers.Conv2D, keras.layers.Dense)


class CompressionError(ValueError):
    """A model cannot be pruned or quantized as built; the message names the layer and the fix."""


def check_graph_model(model, purpose: str) -> None:
    """A flat tf_keras functional (or Sequential) model, with no model nested inside."""
    if not isinstance(model, keras.Model):
        raise CompressionError(
            f"cannot {purpose} a {type(model).__module__}.{type(model).__name__}: TF-MOT needs a "
            "tf_keras model; import tf_keras as keras (or import training first, which sets "
            "TF_USE_LEGACY_KERAS=1) before building it")
    # A functional model has symbolic inputs; a subclassed one has none (inputs is None).
    if not (isinstance(model, keras.Sequential) or model.inputs is not None):
        raise CompressionError(
            f"cannot {purpose} subclassed model '{model.name}' ({type(model).__name__}): "
            "rebuild it as a functional model (keras.Model(inputs, outputs)), e.g. with "
            "training.models.build_model")
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            raise CompressionError(
                f"cannot {purpose} '{model.name}': layer '{layer.name}' is a whole model nested "
                "inside it; build the head on the base's output (base.output) so the model is "
                "flat, or call keras.Model(inner.input, ...) on the inner model's layers")


def check_prunable(model) -> list:
    """Names of the Conv2D/Dense layers that pruning will wrap."""
    check_graph_model(model, "prune")
    names = [layer.name for layer in model.layers if isinstance(layer, PRUNABLE)]
    if not names:
        raise CompressionError(f"model '{model.name}' has no Conv2D or Dense layer to prune")
    return names


def check_quantizable(model) -> None:
    check_graph_model(model, "quantize")
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in PREPROCESSING or kind.startswith("Random") or kind == "Lambda":
            raise CompressionError(
                f"layer '{layer.name}' ({kind}) cannot be quantized: move preprocessing and "
                "augmentation out of the model (into tf.data, and scaling into the export "
                "wrapper), or wrap it with quantize_annotate_layer and a QuantizeConfig")
        activation = getattr(getattr(layer, "activation", None), "__name__", "linear")
        if activation not in QUANTIZABLE_ACTIVATIONS:
            raise CompressionError(
                f"layer '{layer.name}' uses activation '{activation}', which 8-bit QAT cannot "
                f"quantize; use one of {', '.join(sorted(QUANTIZABLE_ACTIVATIONS))}")


_UNSUPPORTED = re.compile(r"Layer (\S+?):<class '([\w.]+)'> is not supported")


def translate(exc: Exception, purpose: str) -> CompressionError:
    """Turn a TF-MOT error into a CompressionError that names the layer and the fix."""
    match = _UNSUPPORTED.search(str(exc))
    if match:
        name, kind = match.group(1), match.group(2).rsplit(".", 1)[-1]
        hint = ("put BatchNormalization right after a Conv2D/DepthwiseConv2D/Dense with no "
                "activation of its own (Conv2D(use_bias=False) -> BatchNormalization -> ReLU)"
                if kind == "BatchNormalization" else
                "replace it with a supported layer or annotate it with a custom QuantizeConfig")
        return CompressionError(f"cannot {purpose}: layer '{name}' ({kind}) is not supported; {hint}")
    return CompressionError(f"cannot {purpose}: {exc}")
