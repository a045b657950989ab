"""``train.ema_decay``: an exponential moving average of the trainable weights (Polyak averaging).

After every optimizer step each trainable weight's shadow moves toward it:
``shadow -= (1 - d) * (shadow - weight)``, with ``d = min(ema_decay, (1 + t) / (10 + t))`` after
``t`` steps, so a short run's average is not dominated by the initial weights (the ramp of
``tf.train.ExponentialMovingAverage``'s ``num_updates``). Batch-norm moving statistics are not
trainable and stay as the training steps left them.

Why a callback and not the optimizers' own ``use_ema``: tf_keras writes that average into the
model only when ``fit`` returns (``finalize_variable_values``), so validation, the best-epoch
checkpoint and early stopping all judge the raw weights, and ``training.fit.trainer.restore_best``
then loads that raw checkpoint over the average. Here the model holds the averaged weights
whenever anything outside a training step looks at it:

- from the start of each epoch's validation (or its end, without validation) until the next
  training step, so ``val_accuracy``, ``checkpoints/best.h5``, early stopping's best weights and
  the caller's epoch-end callbacks read the average (the running training ``accuracy`` and
  ``loss`` are the raw weights', as Keras computes them during the steps);
- after the fit: the returned model, and so evaluation, export (SavedModel and TFLite through
  the one publish path) and a later ``publish`` of the run's best.h5, are the average.

The raw weights and the shadows are exchanged, not copied, so each swap is undone exactly. A fit
resumed from its backup restarts the average from the weights the backup holds (those of its
last finished epoch, averaged when it validated).
"""
from __future__ import annotations

from training.keras2 import keras, tf

RAMP = 10.0   # d_t = min(decay, (1 + t) / (RAMP + t)): 0.1 at the first step, 0.9 after 80


def ramped(decay: float, step: int) -> float:
    """The decay applied after ``step`` earlier updates."""
    return min(decay, (1.0 + step) / (RAMP + step))


class WeightAverage(keras.callbacks.Callback):
    """Keeps the average during ``fit``; the model holds it between epochs and after the fit."""

    def __init__(self, decay: float):
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"train.ema_decay must be in (0, 1) to average, got {decay}")
        self.decay = decay
        self.updates = 0
        self.swapped = False        # the model holds the average, the shadows the raw weights
        self._weights, self._shadows, self._update = [], [], None

    def on_train_begin(self, logs=None):
        # after BackupAndRestore has put back a resumed fit's weights
        self._weights = list(self.model.trainable_variables)
        self._shadows = [tf.Variable(w.read_value(), trainable=False) for w in self._weights]
        self.updates, self.swapped = 0, False
        pairs = list(zip(self._weights, self._shadows))

        @tf.function
        def update(decay):
            for weight, shadow in pairs:
                shadow.assign_sub((1.0 - decay) * (shadow - tf.cast(weight, shadow.dtype)))
        self._update = update

    def _exchange(self) -> None:
        for weight, shadow in zip(self._weights, self._shadows):
            held = weight.numpy()              # a copy: the assign below must not change it
            weight.assign(shadow.read_value())
            shadow.assign(held)
        self.swapped = not self.swapped

    def _hold_average(self) -> None:
        if not self.swapped and self.updates:
            self._exchange()

    def on_train_batch_begin(self, batch, logs=None):
        if self.swapped:                       # train on the raw weights, never on the average
            self._exchange()

    def on_train_batch_end(self, batch, logs=None):
        self._update(tf.constant(ramped(self.decay, self.updates), tf.float32))
        self.updates += 1

    def on_test_begin(self, logs=None):        # the epoch's validation (fit's own evaluate)
        self._hold_average()

    def on_epoch_end(self, epoch, logs=None):  # before the checkpoint and the callbacks after it
        self._hold_average()

    def on_train_end(self, logs=None):
        self._hold_average()
