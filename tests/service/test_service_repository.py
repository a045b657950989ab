"""service.repository: a served version's info and the version policies.
Listing the layout is artifact.versions' (tests/artifact/test_artifact_versions.py)."""
import json

import pytest

from artifact.metadata import InputSpec, MetadataError
from service.repository import read_version, wanted_versions


def _version(root, name, version, **input_overrides):
    d = root / name / str(version)
    d.mkdir(parents=True)
    spec = {"height": 28, "width": 28, "channels": 1, "dtype": "uint8", "color_mode": "L"}
    spec.update(input_overrides)
    (d / "metadata.json").write_text(json.dumps({"labels": ["a", "b"], "input": spec, "formats": {}}))
    return d


@pytest.mark.parametrize("policy, specific, expected", [
    ("latest", [], [10]), ("all", [], [1, 2, 10]), ("specific", [2, 7], [2]),
])
def test_version_policies(policy, specific, expected):
    assert wanted_versions([1, 2, 10], policy, specific) == expected
    assert wanted_versions([], policy, specific) == []


def test_metadata_drives_the_input_spec(tmp_path):
    _version(tmp_path, "m", 1, color_mode="L", invert=True, resize="nearest")
    info = read_version(tmp_path / "m", 1)
    assert (info.name, info.version, info.metadata.name) == ("m", 1, "m")
    assert info.labels == ("a", "b") and info.input == InputSpec(28, 28, 1, "L", True, "nearest")
    assert info.format_path("tflite") is None
    _version(tmp_path, "m", 2, channels=3)
    with pytest.raises(MetadataError, match="input.channels"):
        read_version(tmp_path / "m", 2)
