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
import dataclasses
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import tf_keras as keras

from .backbones import Backbone, adapt_input, load_backbone
from .config import ConfigError, ExperimentConfig
from .data import Dataset, load_data
from .models import classifier_head
from .pipeline import make_dataset
from .train import accuracy, compile_model, make_callbacks, start_run


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
    # Re-running the backbone's graph on our tensor calls its layers directly (shared
    # weights), so no Model is nested in the result and TF-MOT can quantize it.
    features = backbone.model._run_internal_graph(x)
    model = keras.Model(inputs, classifier_head(features, cfg.model, num_classes), name="transfer")
    return TransferModel(model, backbone, layers, [layer.name for layer in adapter])


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


def fit_stage(model, train_cfg, train_ds, *, epochs: int, steps_per_epoch: int, learning_rate: float,
              val_ds=None, callbacks=None) -> tuple:
    """Compile (a fresh optimizer: trainable flags changed) and fit; returns (history, seconds)."""
    stage_cfg = dataclasses.replace(train_cfg, epochs=epochs, learning_rate=learning_rate)
    compile_model(model, stage_cfg, steps_per_epoch)
    start = time.perf_counter()
    history = model.fit(train_ds, validation_data=val_ds, epochs=epochs, steps_per_epoch=steps_per_epoch,
                        callbacks=callbacks or [], verbose=train_cfg.verbose)
    return {k: [float(v) for v in vs] for k, vs in history.history.items()}, time.perf_counter() - start


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
    num_classes = len(train_set.class_names)
    tm = build_transfer_model(cfg, train_set.input_shape, num_classes)
    cfg.transfer.backbone_spec = tm.backbone.spec
    run_dir = start_run(cfg)

    args = dict(batch_size=cfg.train.batch_size, num_classes=num_classes, cache=cfg.data.cache)
    train_ds = make_dataset(train_set, training=True, augment=cfg.augment, seed=cfg.train.seed, **args)
    val_ds = make_dataset(val_set, training=False, **args) if len(val_set) else None
    steps = math.ceil(len(train_set) / cfg.train.batch_size)
    tcfg = cfg.transfer

    def stage(number: int, name: str, epochs: int, lr: float, unfrozen: list) -> dict:
        stage_dir = run_dir / f"stage{number}"
        (stage_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        history, seconds = fit_stage(tm.model, cfg.train, train_ds, epochs=epochs, steps_per_epoch=steps,
                                     learning_rate=lr, val_ds=val_ds,
                                     callbacks=make_callbacks(cfg, stage_dir, val_ds is not None))
        checkpoint = run_dir / "checkpoints" / f"stage{number}.h5"
        tm.model.save_weights(str(checkpoint))     # the state the next stage starts from
        return {"stage": number, "name": name, "epochs": epochs, "learning_rate": lr,
                "unfrozen_layers": len(unfrozen), "unfrozen": unfrozen,
                "trainable_params": int(sum(v.shape.num_elements() for v in tm.model.trainable_weights)),
                "fit_seconds": round(seconds, 1), "checkpoint": str(checkpoint),
                "val_accuracy": history["val_accuracy"][-1] if "val_accuracy" in history else None,
                "test_accuracy": accuracy(tm.model, test_set, cfg.train.batch_size), "history": history}

    freeze_backbone(tm)
    stages = [stage(1, "head", tcfg.head_epochs, tcfg.head_learning_rate, [])]
    if tcfg.unfreeze not in (0, "0") and tcfg.fine_tune_epochs > 0:
        unfrozen = unfreeze_top(tm, tcfg.unfreeze, tcfg.unfreeze_unit)
        stages.append(stage(2, "fine_tune", tcfg.fine_tune_epochs, tcfg.fine_tune_learning_rate, unfrozen))
    return TransferResult(cfg, tm.model, {**tm.backbone.info, "adapter": tm.adapter}, train_set,
                          val_set, test_set, run_dir, stages)


def publish_transfer(result: TransferResult, preset: str = None) -> Path:
    """Publish through the same artifact path as ``train``, with each stage's metrics."""
    from .cli_train import publish_model, techniques
    cfg = result.cfg
    stages = [{k: v for k, v in s.items() if k != "unfrozen"} for s in result.stages]
    summary = {"backbone": result.backbone, "unfreeze": cfg.transfer.unfreeze,
               "unfreeze_unit": cfg.transfer.unfreeze_unit, "stages": stages}
    extra = {
        "techniques": {**techniques(cfg), "transfer_learning": {
            k: v for k, v in summary.items() if k != "stages"}},
        "preset": preset,
        "dataset": {"train": result.train.fingerprint(), "validation": result.validation.fingerprint(),
                    "test": result.test.fingerprint(), "source": cfg.data.source, "path": cfg.data.path},
        "training": {"params": int(result.model.count_params()),
                     "fit_seconds": round(sum(s["fit_seconds"] for s in result.stages), 1)},
        "transfer": summary,
    }
    spec = cfg.transfer.backbone_spec     # lineage, in training.optimize's shape, for own backbones
    parent = {k: spec[k] for k in ("name", "version", "path")} if spec else None
    return publish_model(cfg, result.model, result.test, extra=extra, parent=parent)
