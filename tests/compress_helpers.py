"""Shared by tests/test_compress_*.py: the committed fixture and small, quickly trained models."""
from pathlib import Path

import training  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from training.config import load_config
from training.data.datasets import load_data

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "data" / "fashion_fixture.npz"


def tiny_config(tmp_path=None, **train):
    """The tiny preset on the fixture, quiet, writing only under ``tmp_path``."""
    overrides = [f"data.path={FIXTURE}", "train.verbose=0"]
    overrides += [f"train.{k}={v}" for k, v in train.items()]
    if tmp_path is not None:
        overrides += [f"output_dir={tmp_path / 'runs'}", f"models_dir={tmp_path / 'models'}"]
    return load_config("tiny", overrides)


def fixture_data(cfg=None):
    return load_data((cfg or tiny_config()).data)


def trained_tiny(tmp_path, epochs: int = 8):
    """A tiny CNN trained on the fixture to well above chance, so its argmax decisions
    mean something. Batch 32 gives BatchNorm's moving statistics enough steps to
    settle (with fewer, test accuracy stays near chance). Its head has a
    Dense -> BN -> ReLU block like the default model's, the case where calibrating
    a QAT graph used to wreck the converted file."""
    from training.fit.train import train
    cfg = tiny_config(tmp_path, epochs=epochs, batch_size=32, learning_rate=0.005)
    cfg.augment.enabled = False
    cfg.model.dense_units = 16
    return cfg, train(cfg, fixture_data(cfg))
