"""Keras callbacks for fault tests."""
from training.keras2 import keras


class CrashAtEpoch(keras.callbacks.Callback):
    """Interrupt a fit at the start of ``epoch``, as Ctrl-C would."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt("simulated crash")


class EpochsRun(keras.callbacks.Callback):
    """The epochs a fit started: after a resume, only those left to run."""

    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)
