"""Helpers shared by the training tests."""
import gzip

import numpy as np
import tf_keras as keras


def write_idx(path, array):
    """``array`` as a gzipped idx file, the format of the original Fashion-MNIST files."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fashion_dir(directory, train, test):
    """A $FASHION_MNIST_DIR holding ``train`` and ``test`` (Datasets) as idx files."""
    for prefix, data in (("train", train), ("t10k", test)):
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", data.x[..., 0])
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", data.y)
    return directory


class CrashAtEpoch(keras.callbacks.Callback):
    """Interrupt a fit at the start of ``epoch``, as Ctrl-C would."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt("simulated crash")
