"""Plain training: build the configured model, fit it through the shared trainer, test it."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from .config import ConfigError, ExperimentConfig
from .data import Dataset, load_data
from .models import build_model
from .pipeline import steps_per_epoch, to_float, training_batches, validation_batches
from .recipe import resolve_budget
from .trainer import fit, run_dir_for


@dataclass
class TrainResult:
    model: keras.Model
    train: Dataset
    validation: Dataset
    test: Dataset
    run_dir: Path
    history: dict
    wall_seconds: float
    test_accuracy: float
    budget: dict = field(default_factory=dict)   # batch size, passes and optimizer steps that ran


def train(cfg: ExperimentConfig, data: tuple = None, callbacks: list = ()) -> TrainResult:
    """Train the configured model; ``data`` = (train, val, test) skips loading;
    ``callbacks`` are added to the standard ones."""
    if cfg.model.name == "transfer":
        raise ConfigError("model.name=transfer trains in two stages (frozen backbone, then fine-tuning): "
                          "use python -m training transfer")
    keras.utils.set_random_seed(cfg.train.seed)
    train_set, val_set, test_set = data if data is not None else load_data(cfg.data)
    try:
        budget = resolve_budget(cfg.train, len(train_set))
    except ValueError as exc:
        raise ConfigError(f"training budget: {exc}") from None
    model = build_model(cfg.model, train_set.input_shape, len(train_set.class_names))
    run_dir = run_dir_for(cfg)
    run = fit(model, training_batches(train_set, cfg), cfg.train,
              steps_per_epoch=steps_per_epoch(train_set, cfg.train.batch_size),
              validation=validation_batches(val_set, cfg), run_dir=run_dir, record=cfg.to_dict(),
              callbacks=callbacks)
    return TrainResult(model, train_set, val_set, test_set, run_dir, run.history, run.seconds,
                       accuracy(model, test_set, cfg.train.batch_size), budget)


def predict_probabilities(model: keras.Model, data: Dataset, batch_size: int = 256) -> np.ndarray:
    ds = tf.data.Dataset.from_tensor_slices(data.x).batch(batch_size)
    return np.concatenate([model(to_float(b), training=False).numpy() for b in ds])


def accuracy(model: keras.Model, data: Dataset, batch_size: int = 256) -> float:
    return float(np.mean(predict_probabilities(model, data, batch_size).argmax(1) == data.y))
