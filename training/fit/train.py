"""Plain training: build the configured model, fit it through the shared trainer, test it."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np
from training.keras2 import keras, tf

from training.fit import distribute, precision
from training.config import ConfigError, ExperimentConfig, Resolved
from training.data.sufficiency import check_enough
from training.data.datasets import Dataset, load_data, resolve_data
from training.models.published import load_weights_file
from training.models.registry import build_model
from training.data.pipeline import steps_per_epoch, to_float, training_batches, validation_batches
from training.fit.recipe import MIN_STEPS, resolve_budget
from training.fit.trainer import fit, restore_best, run_dir_for

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    model: Optional[keras.Model]   # None on a worker that is not the chief
    train: Dataset
    validation: Dataset
    test: Dataset
    run_dir: Path
    history: dict                  # every epoch of the run, a resumed one's earlier epochs included
    wall_seconds: float
    test_accuracy: Optional[float]
    budget: dict = field(default_factory=dict)   # batch size, passes and optimizer steps that ran
    distribution: dict = field(default_factory=dict)   # strategy, task, chief, replicas, batches, weights digest
    resolved: Resolved = field(default_factory=Resolved)   # the values "auto" became; .apply(cfg): the config as it ran
    epochs_run: int = 0            # epochs this call ran: fewer than the history holds after a resume


def resolve(cfg: ExperimentConfig, train_set: Dataset) -> Resolved:
    """The resolve step of plain training: the input format and the budget ``cfg`` gives on
    ``train_set``, as a record; ``cfg`` is left as it is."""
    try:
        budget = resolve_budget(cfg.train, len(train_set))
    except ValueError as exc:
        raise ConfigError(f"training budget: {exc}") from None
    return Resolved(batch_size=budget.batch_size, budget=budget, **resolve_data(cfg.data, train_set))


def train(cfg: ExperimentConfig, data: tuple = None, callbacks: list = (), *,
          dist: Optional[distribute.Distribution] = None, init_weights: Optional[Path] = None,
          run_dir: Optional[Path] = None) -> TrainResult:
    """Train the configured model; ``data`` = (train, val, test) skips loading;
    ``callbacks`` are added to the standard ones; ``dist`` a tf.distribute set-up
    (``training.fit.distribute``; none: one device); ``init_weights`` a weights file to
    start from instead of a fresh initialisation; ``run_dir`` instead of
    ``<output_dir>/<name>``."""
    if cfg.model.name == "transfer":
        raise ConfigError("model.name=transfer trains in two stages (frozen backbone, then fine-tuning): "
                          "use python -m training transfer")
    keras.utils.set_random_seed(cfg.train.seed)
    train_set, val_set, test_set = data if data is not None else load_data(cfg.data)
    check_enough(train_set, val_set, test_set, need_validation=cfg.data.validation_split > 0)
    resolved = resolve(cfg, train_set)
    cfg = resolved.apply(cfg)          # the config as it runs, recorded in the run directory
    budget = resolved.budget.to_dict()
    if cfg.data.source == "folder" and budget["optimizer_steps"] < MIN_STEPS:
        # the Fashion-MNIST presets count epochs of 54,000 images; a folder needs steps
        log.warning("only %d optimizer steps on this folder: too few for batch norm and the schedule to settle "
                    "(--preset folder sizes the budget from the data, or --set train.steps=auto)",
                    budget["optimizer_steps"])
    num_classes = len(train_set.class_names)
    dist = dist or distribute.make("default")
    distributed = dist.kind != "default"
    record = dist.record(cfg.train.batch_size)
    # The recipe keeps the per-replica batch; the pipeline and the schedule see the global one.
    step_cfg = replace(cfg, train=replace(cfg.train, batch_size=record["global_batch"]))
    if (slow := precision.slow_bfloat16(cfg.train.precision)) is not None:
        log.warning(slow)
    # train.precision: layers take the policy when built; the global policy is restored at once
    with dist.strategy.scope(), precision.policy(cfg.train.precision):
        # variables (and, at compile, the optimizer's) live on every replica
        model = build_model(cfg.model, train_set.input_shape, num_classes)
        if init_weights is not None:     # a retrain's start: a corrupted file is named, not a traceback
            load_weights_file(model, init_weights, "the config describes")
    with distribute.run_dir(run_dir or run_dir_for(cfg), dist) as writing_dir:
        run = fit(model, training_batches(train_set, step_cfg), step_cfg.train,
                  steps_per_epoch=steps_per_epoch(train_set, step_cfg.train.batch_size),
                  validation=validation_batches(val_set, step_cfg), run_dir=writing_dir, record=cfg.to_dict(),
                  callbacks=callbacks, restore=not distributed)
        # Every worker reads the weights (batch-norm statistics are averaged on read, a
        # collective step): the same number of reads everywhere, or the workers hang.
        weights = model.get_weights()
    record["weights_sha256"] = distribute.weights_digest(weights)
    if not dist.chief:
        return TrainResult(None, train_set, val_set, test_set, writing_dir, run.history, run.seconds, None,
                           budget, record, resolved, run.epochs_run)
    if distributed:   # evaluate, export and publish a plain copy, outside the strategy
        model = build_model(cfg.model, train_set.input_shape, num_classes)
        model.set_weights(weights)
        restore_best(model, writing_dir)
    # what the caller evaluates, exports or compresses computes in float32 whatever trained it
    model = precision.float32_copy(model)
    return TrainResult(model, train_set, val_set, test_set, writing_dir, run.history, run.seconds,
                       accuracy(model, test_set, cfg.train.batch_size), budget, record, resolved, run.epochs_run)


def predict_probabilities(model: keras.Model, data: Dataset, batch_size: int = 256) -> np.ndarray:
    ds = tf.data.Dataset.from_tensor_slices(data.x).batch(batch_size)
    return np.concatenate([model(to_float(b), training=False).numpy() for b in ds])


def accuracy(model: keras.Model, data: Dataset, batch_size: int = 256) -> float:
    return float(np.mean(predict_probabilities(model, data, batch_size).argmax(1) == data.y))
