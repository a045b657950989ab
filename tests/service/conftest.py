"""The service tests' fixtures: the tiny real artifact and the two shared servers, built once
per session (``support.service`` has the builders)."""
from pathlib import Path

import pytest

from support.service import Server, build_artifact, model_root


@pytest.fixture(scope="session")
def artifact(tmp_path_factory) -> Path:
    """The source version directory (float tflite), built once."""
    return build_artifact(tmp_path_factory.mktemp("artifacts"))


@pytest.fixture(scope="session")
def faulty_artifact(tmp_path_factory) -> Path:
    """A version whose model fails on some inputs, published as model 'faulty'."""
    return build_artifact(tmp_path_factory.mktemp("faulty-src"), faulty=True, name="faulty")


def _serve(root: Path, log: Path, **settings):
    server = Server(root, log, **settings).wait()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tf_server(tmp_path_factory, artifact, faulty_artifact):
    """backend tf, models fashion (v1) and faulty (v1)."""
    root = model_root(tmp_path_factory, artifact, "root-tf", faulty=faulty_artifact)
    yield from _serve(root, tmp_path_factory.mktemp("logs") / "tf.log", backend="tf",
                      max_batch_delay_ms=20, poll_interval_s=0)


@pytest.fixture(scope="session")
def tflite_server(tmp_path_factory, artifact):
    """backend tflite, model fashion (v1)."""
    root = model_root(tmp_path_factory, artifact, "root-tflite")
    yield from _serve(root, tmp_path_factory.mktemp("logs") / "tflite.log", backend="tflite", poll_interval_s=0)
