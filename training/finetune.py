"""Short fine-tunes of an already trained model (pruning, QAT): one compile + fit.

A gentle cosine decay from a small peak rate: the weights are already good,
and a warm-up or a large rate would undo what the source model learned.
"""
from __future__ import annotations

import math
from dataclasses import replace

from .data import Dataset
from .pipeline import make_dataset
from .train import compile_model


def fine_tune(model, train: Dataset, cfg, epochs: int, learning_rate: float,
              validation: Dataset = None, callbacks: list = None) -> dict:
    """Fit ``model`` for ``epochs`` on ``train`` with the config's batch size and augmentation."""
    num_classes = len(train.class_names)
    steps = math.ceil(len(train) / cfg.train.batch_size)
    compile_model(model, replace(cfg.train, epochs=epochs, learning_rate=learning_rate,
                                 schedule="cosine"), steps)
    augment = cfg.augment if cfg.augment.enabled else None
    ds = make_dataset(train, cfg.train.batch_size, num_classes, training=True, augment=augment,
                      seed=cfg.train.seed, cache=cfg.data.cache)
    val = None
    if validation is not None and len(validation):
        val = make_dataset(validation, cfg.train.batch_size, num_classes, training=False,
                           cache=cfg.data.cache)
    history = model.fit(ds, validation_data=val, epochs=epochs, verbose=cfg.train.verbose,
                        callbacks=callbacks or [])
    return {k: [float(v) for v in vs] for k, vs in history.history.items()}


def steps_per_epoch(train: Dataset, cfg) -> int:
    return math.ceil(len(train) / cfg.train.batch_size)
