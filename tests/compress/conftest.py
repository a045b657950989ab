"""The compression tests' fixture: one small model trained on the fixture, shared by the
quantization and optimize tests (each compresses a copy; none changes its weights)."""
import pytest

from support.builders import trained_tiny


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """(config, TrainResult) of a tiny CNN trained well above chance."""
    return trained_tiny(tmp_path_factory.mktemp("compress"))
