"""Seeing through TF-MOT wrappers: a layer's own weights, copies and parameter counts.

Pruning and QAT wrap layers and add bookkeeping variables (masks, thresholds,
steps, quantizer ranges). A QuantizeWrapper also takes the inner layer's
kernel away from it (``layer.weights`` is then empty and ``layer.kernel`` a
tensor), so weights are matched by their short names ("kernel", "gamma").
"""
from __future__ import annotations

import numpy as np
from training.keras2 import keras


def _short(variable) -> str:
    return variable.name.split("/")[-1].split(":")[0]


def base_layers(model: keras.Model) -> list:
    """(layer name, wrapper-or-layer) for the model's own layers; QAT's input quantizer has no twin."""
    return [(getattr(l, "layer", l).name, l) for l in model.layers if type(l).__name__ != "QuantizeLayer"]


def own_weights(layer) -> dict:
    """short name -> variable of the original layer's weights, without wrapper bookkeeping."""
    inner = getattr(layer, "layer", None)
    if inner is None:
        return {_short(v): v for v in layer.weights}
    found = {_short(v): v for v in inner.weights}   # what the inner layer still holds
    bookkeeping = f"{layer.name}/"   # wrapper variables (mask, ranges, steps) live under its name
    for v in layer.weights:
        if not v.name.startswith(bookkeeping):
            found.setdefault(_short(v), v)
    return found


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Copy layer by layer between clones, either side wrapped or plain."""
    src, dst = base_layers(source), base_layers(target)
    if [n for n, _ in src] != [n for n, _ in dst]:
        raise ValueError(f"cannot copy weights from '{source.name}' to '{target.name}': "
                         "their layers do not correspond")
    for (name, s), (_, d) in zip(src, dst):
        values, variables = own_weights(s), own_weights(d)
        if values.keys() != variables.keys():
            raise ValueError(f"layer '{name}': weights {sorted(values)} vs {sorted(variables)}")
        for key, variable in variables.items():
            variable.assign(values[key])


def kernel(layer):
    """The kernel variable of a (possibly wrapped) Conv/Dense layer, or None."""
    return own_weights(layer).get("kernel")


def nonzero_params(model: keras.Model) -> dict:
    """Parameters of the underlying float model (trainable and BN statistics, no
    pruning/QAT bookkeeping), and how many of them are not zero."""
    weights = [v for _, layer in base_layers(model) for v in own_weights(layer).values()]
    return {"params": int(sum(int(np.prod(v.shape)) for v in weights)),
            "nonzero_params": int(sum(int(np.count_nonzero(v.numpy())) for v in weights))}
