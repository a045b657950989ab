"""Transfer learning: a pretrained backbone, a new head, two-stage fine-tuning.

Stage 1 trains only the new head on a frozen backbone (random head gradients
would otherwise wreck the pretrained features). Stage 2 unfreezes the top N
layers or blocks (or all) and trains on at a low learning rate. BatchNorm
layers of the backbone stay frozen throughout: in Keras 2 a non-trainable
BatchNormalization runs in inference mode, so its moving statistics, learned on
the source data, are not overwritten by small target batches. Keras needs a
recompile after every change of ``trainable``, so each stage compiles afresh.
"""
from __future__ import annotations

import copy
import logging
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

import tf_keras as keras

from .backbones import Backbone, adapt_input, load_backbone
from .config import ConfigError, ExperimentConfig
from .data import Dataset, dataset_record, load_data
from .models import classifier_head, register
from .pipeline import steps_per_epoch, training_batches, validation_batches
from .recipe import AUTO, auto_batch_size, auto_steps
from .release import publish_model, techniques
from .train import accuracy
from .trainer import fit, run_dir_for

log = logging.getLogger(__name__)


@dataclass
class TransferModel:
    model: keras.Model                 # flat: input -> adapter -> backbone layers -> head
    backbone: Backbone
    backbone_layers: list              # the backbone's layers inside ``model``, input to output
    adapter: list                      # names of the frozen input-adapter layers


def build_transfer_model(cfg: ExperimentConfig, input_shape: tuple, num_classes: int,
                         weights=None) -> TransferModel:
    """``weights`` overrides cfg.transfer.weights ("none" when trained weights follow)."""
    backbone = load_backbone(cfg.transfer, input_shape, weights)
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


@register("transfer")
def build_transfer(cfg: ExperimentConfig, input_shape: tuple, num_classes: int) -> keras.Model:
    """The registry's builder: the architecture without pretrained weights, which the trained
    weights of a published transfer model replace anyway (nothing is downloaded)."""
    return build_transfer_model(cfg, input_shape, num_classes, weights="none").model


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


@dataclass
class TransferResult:
    cfg: ExperimentConfig              # as it ran: model.name "transfer", backbone_spec filled in
    model: keras.Model
    backbone: dict
    train: Dataset
    validation: Dataset
    test: Dataset
    run_dir: Path
    stages: list


def resolved_config(cfg: ExperimentConfig) -> ExperimentConfig:
    cfg = copy.deepcopy(cfg)
    cfg.model.name = "transfer"        # publish/load_keras_model rebuild through the transfer builder
    return cfg


def run_transfer(cfg: ExperimentConfig, data: tuple = None) -> TransferResult:
    """Both stages on ``data`` = (train, val, test) or the configured data set."""
    cfg = resolved_config(cfg)
    keras.utils.set_random_seed(cfg.train.seed)
    train_set, val_set, test_set = data if data is not None else load_data(cfg.data)
    tm = build_transfer_model(cfg, train_set.input_shape, len(train_set.class_names))
    cfg.transfer.backbone_spec = tm.backbone.spec
    if cfg.train.batch_size == AUTO:
        cfg.train.batch_size = auto_batch_size(len(train_set))
    run_dir = run_dir_for(cfg)
    train_ds, val_ds = training_batches(train_set, cfg), validation_batches(val_set, cfg)
    steps = steps_per_epoch(train_set, cfg.train.batch_size)
    tcfg = cfg.transfer
    if tcfg.head_steps:
        # a small folder gives a few steps per pass: epochs alone leave the new head untrained
        head_steps = auto_steps(len(train_set), cfg.train.batch_size) if tcfg.head_steps == AUTO else tcfg.head_steps
        tcfg.head_epochs = max(1, math.ceil(head_steps / steps))
        log.info("head stage: %d optimizer steps = %d passes x %d batches of %d", tcfg.head_epochs * steps,
                 tcfg.head_epochs, steps, cfg.train.batch_size)

    def stage(number: int, name: str, epochs: int, lr: float, unfrozen: list) -> dict:
        # fit() compiles afresh: a new optimizer sees the changed trainable flags.
        run = fit(tm.model, train_ds, replace(cfg.train, epochs=epochs, learning_rate=lr),
                  steps_per_epoch=steps, validation=val_ds, run_dir=run_dir / f"stage{number}",
                  record=cfg.to_dict())
        checkpoint = run_dir / "checkpoints" / f"stage{number}.h5"
        tm.model.save_weights(str(checkpoint))     # the state the next stage starts from
        return {"stage": number, "name": name, "epochs": epochs, "learning_rate": lr,
                "unfrozen_layers": len(unfrozen), "unfrozen": unfrozen,
                "trainable_params": int(sum(v.shape.num_elements() for v in tm.model.trainable_weights)),
                "fit_seconds": round(run.seconds, 1), "checkpoint": str(checkpoint),
                "val_accuracy": run.history["val_accuracy"][-1] if "val_accuracy" in run.history else None,
                "test_accuracy": accuracy(tm.model, test_set, cfg.train.batch_size), "history": run.history}

    freeze_backbone(tm)
    stages = [stage(1, "head", tcfg.head_epochs, tcfg.head_learning_rate, [])]
    if tcfg.unfreeze not in (0, "0") and tcfg.fine_tune_epochs > 0:
        unfrozen = unfreeze_top(tm, tcfg.unfreeze, tcfg.unfreeze_unit)
        stages.append(stage(2, "fine_tune", tcfg.fine_tune_epochs, tcfg.fine_tune_learning_rate, unfrozen))
    return TransferResult(cfg, tm.model, {**tm.backbone.info, "adapter": tm.adapter}, train_set,
                          val_set, test_set, run_dir, stages)


def publish_transfer(result: TransferResult, preset: str = None, force: bool = False) -> Path:
    """Publish through the same artifact path as ``train``, with each stage's metrics."""
    cfg = result.cfg
    stages = [{k: v for k, v in s.items() if k != "unfrozen"} for s in result.stages]
    summary = {"backbone": result.backbone, "unfreeze": cfg.transfer.unfreeze,
               "unfreeze_unit": cfg.transfer.unfreeze_unit, "stages": stages}
    extra = {
        "techniques": {**techniques(cfg), "transfer_learning": {
            k: v for k, v in summary.items() if k != "stages"}},
        "preset": preset,
        "dataset": dataset_record(cfg.data, result.train, result.validation, result.test),
        "training": {"params": int(result.model.count_params()),
                     "fit_seconds": round(sum(s["fit_seconds"] for s in result.stages), 1)},
        "transfer": summary,
    }
    spec = cfg.transfer.backbone_spec     # lineage, in training.optimize's shape, for own backbones
    parent = {k: spec[k] for k in ("name", "version", "path")} if spec else None
    history = result.stages[-1]["history"]
    return publish_model(cfg, result.model, result.test, extra=extra, parent=parent, history=history, force=force)
