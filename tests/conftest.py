"""Shared fixtures: the committed Fashion-MNIST fixture and tiny configs.

Importing ``training`` first sets TF_USE_LEGACY_KERAS before TensorFlow loads,
so every test in the session sees Keras 2 (tf_keras) models.
"""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import training  # noqa: E402,F401  (environment first)

FIXTURE = ROOT / "tests" / "data" / "fashion_fixture.npz"


@pytest.fixture(scope="session")
def fixture_data():
    """(train, val, test) Datasets from the committed 2,000-image fixture."""
    from training.config import load_config
    from training.data.datasets import load_data
    return load_data(load_config("tiny").data)


@pytest.fixture
def fixture_as_fashion(tmp_path, monkeypatch, fixture_data):
    """The fixture written as Fashion-MNIST idx files, for code that loads the real data set."""
    from training_helpers import fashion_dir
    train, _, test = fixture_data
    directory = tmp_path / "fashion"
    directory.mkdir()
    monkeypatch.setenv("FASHION_MNIST_DIR", str(fashion_dir(directory, train, test)))


@pytest.fixture
def tiny_config(tmp_path):
    """A factory: the tiny preset writing into tmp_path, with extra overrides."""
    from training.config import load_config

    def make(*overrides):
        return load_config("tiny", [f"output_dir={tmp_path / 'runs'}",
                                    f"models_dir={tmp_path / 'models'}",
                                    "train.verbose=0", *overrides])
    return make
