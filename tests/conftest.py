"""Fixtures every area uses, built by ``support.builders``; each area's conftest adds its own.

``pytest.ini`` puts the repository and ``tests/`` on the path, so tests import
``training``, ``service``, ``artifact`` and ``support`` by name.
"""
from pathlib import Path

import pytest

from support import builders
from support.service import build_artifact


@pytest.fixture(scope="session")
def fixture_data():
    """(train, val, test) Datasets from the committed 2,000-image fixture."""
    return builders.fixture_data()


@pytest.fixture
def fixture_as_fashion(tmp_path, monkeypatch, fixture_data):
    """The fixture written as Fashion-MNIST idx files, for code that loads the real data set."""
    train, _, test = fixture_data
    directory = tmp_path / "fashion"
    directory.mkdir()
    monkeypatch.setenv("FASHION_MNIST_DIR", str(builders.fashion_dir(directory, train, test)))


@pytest.fixture
def tiny_config(tmp_path):
    """A factory: the tiny preset writing into tmp_path, with extra --set lines."""
    def make(*overrides):
        return builders.tiny_config(tmp_path, *overrides)
    return make


@pytest.fixture(scope="session")
def artifact(tmp_path_factory) -> Path:
    """A tiny real published version (a nearest-centroid model, float tflite), built once;
    the service and rollback tests serve it."""
    return build_artifact(tmp_path_factory.mktemp("artifacts"))


@pytest.fixture(scope="session")
def faulty_artifact(tmp_path_factory) -> Path:
    """A version whose model fails on some inputs, published as model 'faulty'."""
    return build_artifact(tmp_path_factory.mktemp("faulty-src"), faulty=True, name="faulty")
