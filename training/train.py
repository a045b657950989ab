"""compile() + fit() with every callback built in one place."""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf
import tf_keras as keras

from . import distribute
from .config import ConfigError, ExperimentConfig
from .data import Dataset, load_data
from .models import build_model
from .pipeline import make_dataset, to_float


@keras.utils.register_keras_serializable("training")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak`` then cosine decay to ``peak * floor`` (one-cycle style)."""

    def __init__(self, peak: float, total_steps: int, warmup_steps: int, floor: float = 0.01):
        self.peak, self.total_steps, self.warmup_steps, self.floor = peak, total_steps, warmup_steps, floor

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = self.peak * (step + 1) / max(self.warmup_steps, 1)
        progress = tf.clip_by_value((step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 0.0, 1.0)
        cosine = self.peak * (self.floor + (1 - self.floor) * 0.5 * (1 + tf.cos(math.pi * progress)))
        return tf.where(step < self.warmup_steps, warm, cosine)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "floor": self.floor}


def learning_rate(cfg, steps_per_epoch: int):
    total = steps_per_epoch * cfg.epochs
    if cfg.schedule == "constant":
        return cfg.learning_rate
    if cfg.schedule == "cosine":
        return WarmupCosine(cfg.learning_rate, total, 0)
    if cfg.schedule == "onecycle":
        return WarmupCosine(cfg.learning_rate, total, int(cfg.warmup_epochs * steps_per_epoch))
    raise ValueError(f"unknown train.schedule '{cfg.schedule}' (constant, cosine, onecycle)")


def make_optimizer(cfg, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    lr = learning_rate(cfg, steps_per_epoch)
    if cfg.optimizer == "adam":
        return keras.optimizers.Adam(lr)
    if cfg.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=1e-4)
    if cfg.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=cfg.momentum, nesterov=True)
    raise ValueError(f"unknown train.optimizer '{cfg.optimizer}' (adam, adamw, sgd)")


def compile_model(model: keras.Model, cfg, steps_per_epoch: int) -> None:
    model.compile(optimizer=make_optimizer(cfg, steps_per_epoch),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                  metrics=["accuracy"])


def make_callbacks(cfg: ExperimentConfig, run_dir: Path, has_validation: bool) -> list:
    monitor = "val_accuracy" if has_validation else "accuracy"
    callbacks = [
        # Resume: an interrupted fit() restarts from the last finished epoch.
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        keras.callbacks.ModelCheckpoint(str(run_dir / "checkpoints" / "best.h5"), monitor=monitor,
                                        mode="max", save_best_only=True, save_weights_only=True),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), profile_batch=0),
    ]
    if cfg.train.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=monitor, mode="max", patience=cfg.train.early_stopping_patience,
            restore_best_weights=True))
    return callbacks


@dataclass
class TrainResult:
    model: Optional[keras.Model]   # None on a worker that is not the chief
    train: Dataset
    validation: Dataset
    test: Dataset
    run_dir: Path
    history: dict
    wall_seconds: float
    test_accuracy: Optional[float]
    distribution: dict             # strategy, task, chief, replicas, batch sizes, weights digest


def run_dir_for(cfg: ExperimentConfig) -> Path:
    path = Path(cfg.output_dir) / cfg.name
    (path / "checkpoints").mkdir(parents=True, exist_ok=True)
    return path


def start_run(cfg: ExperimentConfig, path: Optional[Path] = None) -> Path:
    """The run's directory, with this config recorded in it.

    BackupAndRestore resumes whatever interrupted run it finds there, so a
    backup left by a different config is refused rather than silently resumed
    into this one (or failing later on mismatched weights).
    """
    path = path or run_dir_for(cfg)
    (path / "checkpoints").mkdir(parents=True, exist_ok=True)
    recorded, config = path / "config.json", json.loads(json.dumps(cfg.to_dict()))
    # A finished fit() empties its backup; transfer keeps one per stage.
    backup = next((b for b in path.rglob("backup") if b.is_dir() and any(b.iterdir())), None)
    if backup and recorded.exists() and json.loads(recorded.read_text()) != config:
        raise ConfigError(f"{path} holds an interrupted run of a different config ({recorded}); rerun with "
                          f"that config to resume it, or delete {backup} (or set name / output_dir) to "
                          "start afresh")
    recorded.write_text(json.dumps(config, indent=2))
    return path


def train(cfg: ExperimentConfig, data: tuple = None, callbacks: list = (), *,
          dist: Optional[distribute.Distribution] = None, init_weights: Optional[Path] = None,
          run_dir: Optional[Path] = None) -> TrainResult:
    """Train the configured model; ``data`` = (train, val, test) skips loading;
    ``callbacks`` are added to the standard ones; ``dist`` a tf.distribute set-up
    (``training.distribute``; none: one device); ``init_weights`` a weights file to
    start from instead of a fresh initialisation; ``run_dir`` instead of
    ``<output_dir>/<name>``."""
    keras.utils.set_random_seed(cfg.train.seed)
    train_set, val_set, test_set = data if data is not None else load_data(cfg.data)
    num_classes = len(train_set.class_names)
    dist = dist or distribute.make("default")
    record = dist.record(cfg.train.batch_size)
    with dist.strategy.scope():
        model = build_model(cfg.model, train_set.input_shape, num_classes)
        if init_weights is not None:
            model.load_weights(str(init_weights))
        steps = math.ceil(len(train_set) / record["global_batch"])
        compile_model(model, cfg.train, steps)

    fit_args = dict(batch_size=record["global_batch"], num_classes=num_classes, cache=cfg.data.cache)
    train_ds = make_dataset(train_set, training=True, augment=cfg.augment, seed=cfg.train.seed, **fit_args)
    val_ds = make_dataset(val_set, training=False, **fit_args) if len(val_set) else None

    with distribute.run_dir(run_dir or run_dir_for(cfg), dist) as writing_dir:
        start_run(cfg, writing_dir)
        start = time.perf_counter()
        history = model.fit(train_ds, validation_data=val_ds, epochs=cfg.train.epochs,
                            callbacks=make_callbacks(cfg, writing_dir, val_ds is not None) + list(callbacks),
                            verbose=cfg.train.verbose)
        wall = time.perf_counter() - start
        weights = model.get_weights()   # every worker: a collective read of batch-norm statistics
    record["weights_sha256"] = distribute.weights_digest(weights)
    history = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    if not dist.chief:
        return TrainResult(None, train_set, val_set, test_set, writing_dir, history, wall, None, record)
    if dist.kind != "default":   # evaluate, export and publish a plain copy, outside the strategy
        model = build_model(cfg.model, train_set.input_shape, num_classes)
        model.set_weights(weights)
    return TrainResult(model, train_set, val_set, test_set, writing_dir, history, wall,
                       accuracy(model, test_set, cfg.train.batch_size), record)


def predict_probabilities(model: keras.Model, data: Dataset, batch_size: int = 256) -> np.ndarray:
    ds = tf.data.Dataset.from_tensor_slices(data.x).batch(batch_size)
    return np.concatenate([model(to_float(b), training=False).numpy() for b in ds])


def accuracy(model: keras.Model, data: Dataset, batch_size: int = 256) -> float:
    return float(np.mean(predict_probabilities(model, data, batch_size).argmax(1) == data.y))
