"""The one fixture builder: the committed Fashion-MNIST fixture, tiny configs writing only
under a test's folder, and a small model trained on it. The area conftests wrap these
as fixtures; tests that need them outside a fixture import them from here."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "data" / "fashion_fixture.npz"


def tiny_config(tmp_path=None, *overrides: str, **train):
    """The tiny preset on the fixture, quiet, writing only under ``tmp_path``; ``overrides``
    are --set lines, ``train`` keyword arguments set ``train.<key>``."""
    from training.config import load_config
    lines = [f"data.path={FIXTURE}", "train.verbose=0"]
    lines += [f"train.{k}={v}" for k, v in train.items()]
    if tmp_path is not None:
        lines += [f"output_dir={Path(tmp_path) / 'runs'}", f"models_dir={Path(tmp_path) / 'models'}"]
    return load_config("tiny", [*lines, *overrides])


def fixture_data(cfg=None):
    """(train, val, test) Datasets from the committed 2,000-image fixture."""
    from training.data.datasets import load_data
    return load_data((cfg or tiny_config()).data)


def trained_tiny(tmp_path, epochs: int = 8):
    """A tiny CNN trained on the fixture to well above chance, so its argmax decisions
    mean something. Batch 32 gives BatchNorm's moving statistics enough steps to
    settle (with fewer, test accuracy stays near chance). Its head has a
    Dense -> BN -> ReLU block like the default model's, the case where calibrating
    a QAT graph used to wreck the converted file."""
    from training.fit.train import train
    cfg = tiny_config(tmp_path, "augment.enabled=false", "model.dense_units=16",
                      epochs=epochs, batch_size=32, learning_rate=0.005)
    return cfg, train(cfg, fixture_data(cfg))


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
