"""Short fine-tunes of an already trained model (pruning, QAT) through the shared
trainer, and re-estimating BatchNorm statistics afterwards.

A gentle decay from a small peak rate (``optimize.fine_tune_schedule``, cosine by
default): the weights are already good, and a warm-up or a large rate would undo
what the source model learned.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from training.keras2 import keras, tf

from training.data.datasets import Dataset
from training.data.pipeline import steps_per_epoch, to_float, training_batches, validation_batches
from training.fit.trainer import fit


def fine_tune(model, train: Dataset, cfg, *, epochs: int, learning_rate: float, run_dir: Path,
              record: dict, validation: Dataset = None, callbacks=(), keep_best: bool = True) -> dict:
    """Fit ``model`` for ``epochs`` on ``train`` with the config's batch size and augmentation;
    returns the history. ``run_dir``, ``record``, ``callbacks``, ``keep_best``: see trainer.fit."""
    # No weight average (train.ema_decay) here: the compression study measured these fine-tunes
    # without one. (It would keep the sparsity: on the tiny preset a 0.9 average through a 75%
    # prune still stripped to 75% zeros, as UpdatePruningStep re-masks the averaged kernels at
    # each epoch end; what it does to QAT's learned ranges is unmeasured.)
    settings = replace(cfg.train, epochs=epochs, learning_rate=learning_rate,
                       schedule=cfg.optimize.fine_tune_schedule, ema_decay=0.0)
    return fit(model, training_batches(train, cfg), settings,
               steps_per_epoch=steps_per_epoch(train, cfg.train.batch_size),
               validation=validation_batches(validation, cfg), run_dir=run_dir, record=record,
               callbacks=callbacks, keep_best=keep_best).history


def recalibrate_batch_norm(model, data: Dataset, batch_size: int = 256, batches: int = 40) -> None:
    """Set BN moving statistics to the plain average over ``batches`` batches.

    BN's moving averages (momentum 0.99, a ~100-step memory) trail weights that
    change fast, as pruning's masks make them: after a 105-step prune to 75%
    the model scored 0.51 at test time though it trained at 0.86, and 0.85
    after this. Momentum i/(i+1) on batch i makes the moving value the exact
    mean over the batches. Call it on a plain model (pruning wrappers would
    advance their schedule in training mode); no weight changes.
    """
    layers = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    if not layers or not len(data):
        return
    momenta = [l.momentum for l in layers]
    images = tf.data.Dataset.from_tensor_slices(data.x).shuffle(len(data), seed=0).batch(batch_size)
    try:
        for i, batch in enumerate(images.take(batches)):
            for layer in layers:
                layer.momentum = i / (i + 1)
            model(to_float(batch), training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
