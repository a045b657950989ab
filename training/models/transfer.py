"""The transfer-learning model: a pretrained backbone's layers on an input adapter, a new head.

``training.transfer.pipeline`` trains it in two stages; the helpers here freeze
and unfreeze its backbone. BatchNorm layers of the backbone stay frozen
throughout: in Keras 2 a non-trainable BatchNormalization runs in inference mode,
so its moving statistics, learned on the source data, are not overwritten by
small target batches.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Optional

from training.config import ConfigError, ExperimentConfig
from training.keras2 import keras
from training.models.backbones import Backbone, adapt_input, load_backbone
from training.models.cnn import classifier_head


@dataclass
class TransferModel:
    model: keras.Model                 # flat: input -> adapter -> backbone layers -> head
    backbone: Backbone
    backbone_layers: list              # the backbone's layers inside ``model``, input to output
    adapter: list                      # names of the frozen input-adapter layers


def build_transfer_model(cfg: ExperimentConfig, input_shape: tuple, num_classes: int, *,
                         build: Callable, weights=None, backbone_spec: Optional[dict] = None) -> TransferModel:
    """``weights`` overrides cfg.transfer.weights ("none" when trained weights follow);
    ``build`` is the registry's builder, which rebuilds a published backbone (from
    ``backbone_spec`` when given, see ``training.models.backbones.load_backbone``)."""
    backbone = load_backbone(cfg.transfer, input_shape, build, weights, backbone_spec)
    layers = [layer for layer in backbone.model.layers if not isinstance(layer, keras.layers.InputLayer)]
    taken = {layer.name for layer in layers}
    prefix = next(p for p in ("adapt", *(f"adapt{i}" for i in range(2, 99)))
                  if not any(name.startswith(p + "_") for name in taken))
    inputs = keras.Input(input_shape, name="image")
    x, adapter = adapt_input(inputs, backbone, cfg.transfer.resize, cfg.transfer.scale, prefix)
    model = keras.Model(inputs, classifier_head(call_layers(backbone.model, x), cfg.model, num_classes),
                        name="transfer")
    return TransferModel(model, backbone, layers, [layer.name for layer in adapter])


def call_layers(model: keras.Model, x):
    """``model``'s graph run on the tensor ``x`` by calling its own layers (shared weights,
    loaded already), in the order its functional config lists them. The layers become
    part of the model being built on ``x``, flat: no Model is nested, so TF-MOT can
    quantize it (a nested ``model(x)`` would not be)."""
    config = model.get_config()
    (name, node, index), = config["input_layers"]
    tensors = {(name, node, index): x}       # (layer, node, output) as the config names them
    for layer in config["layers"]:
        for node_index, inbound in enumerate(layer["inbound_nodes"]):
            args = [tensors[(n, i, t)] for n, i, t, _ in inbound]
            outputs = model.get_layer(layer["name"])(args[0] if len(args) == 1 else args, **inbound[0][3])
            for t, tensor in enumerate(outputs if isinstance(outputs, (list, tuple)) else [outputs]):
                tensors[(layer["name"], node_index, t)] = tensor
    (name, node, index), = config["output_layers"]
    return tensors[(name, node, index)]


def build_transfer(cfg: ExperimentConfig, input_shape: tuple, num_classes: int, *,
                   build: Callable, backbone_spec: Optional[dict] = None) -> keras.Model:
    """The registry's builder: the architecture without pretrained weights, which the trained
    weights of a published transfer model replace anyway (nothing is downloaded)."""
    return build_transfer_model(cfg, input_shape, num_classes, build=build, weights="none",
                                backbone_spec=backbone_spec).model


def _is_bn(layer) -> bool:
    return isinstance(layer, keras.layers.BatchNormalization)


def units(tm: TransferModel, unit: str) -> list:
    """The backbone's unfreezable units, bottom to top: lists of layers with trainable weights."""
    weighted = [layer for layer in tm.backbone_layers
                if not _is_bn(layer) and any(v.trainable for v in layer.weights)]
    if unit == "layers":
        return [[layer] for layer in weighted]
    if unit != "blocks":
        raise ConfigError(f"unknown transfer.unfreeze_unit '{unit}' (layers, blocks)")
    groups: dict = {}
    for layer in weighted:      # layers outside any block (stem, top conv) are units of their own
        match = re.match(tm.backbone.block_pattern, layer.name)
        groups.setdefault(match.group(1) if match else layer.name, []).append(layer)
    return list(groups.values())


def freeze_backbone(tm: TransferModel) -> None:
    for layer in tm.backbone_layers:
        layer.trainable = False


def unfreeze_top(tm: TransferModel, unfreeze, unit: str = "layers") -> list:
    """Make the top ``unfreeze`` units (an int, or "all") trainable; BatchNorm stays frozen.
    Returns the names of the layers made trainable."""
    freeze_backbone(tm)
    available = units(tm, unit)
    if unfreeze == "all":
        chosen = available
    elif isinstance(unfreeze, int) and not isinstance(unfreeze, bool) and unfreeze >= 0:
        chosen = available[len(available) - min(unfreeze, len(available)):]
    else:
        raise ConfigError(f"transfer.unfreeze must be 'all' or a whole number >= 0, got {unfreeze!r}")
    names = []
    for group in chosen:
        for layer in group:
            layer.trainable = True
            names.append(layer.name)
    return names
