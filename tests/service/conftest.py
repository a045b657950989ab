"""The service tests' fixtures: the two shared servers, built once per session on the tiny
real artifact of the root conftest (``support.service`` has the builders)."""
from pathlib import Path

import pytest

from support.service import Server, model_root


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
