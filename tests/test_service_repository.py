"""service.repository: scanning the layout and the version policies."""
import json

import pytest

from service.repository import InputSpec, read_version, scan, wanted_versions


def _version(root, name, version, **input_overrides):
    d = root / name / str(version)
    d.mkdir(parents=True)
    spec = {"height": 28, "width": 28, "channels": 1, "dtype": "uint8", "color_mode": "L"}
    spec.update(input_overrides)
    (d / "metadata.json").write_text(json.dumps({"labels": ["a", "b"], "input": spec, "formats": {}}))
    return d


def test_scan_ignores_hidden_non_integer_and_unfinished_directories(tmp_path):
    for v in (1, 2, 10):
        _version(tmp_path, "fashion", v)
    (tmp_path / "fashion" / ".tmp-11").mkdir()          # being written
    _version(tmp_path, "fashion", "latest")              # not an integer
    (tmp_path / "fashion" / "12").mkdir()                # no metadata.json
    (tmp_path / ".hidden").mkdir()
    _version(tmp_path, "other", 3)
    assert scan(tmp_path) == {"fashion": [1, 2, 10], "other": [3]}
    assert scan(tmp_path / "missing") == {}


@pytest.mark.parametrize("policy, specific, expected", [
    ("latest", [], [10]), ("all", [], [1, 2, 10]), ("specific", [2, 7], [2]),
])
def test_version_policies(policy, specific, expected):
    assert wanted_versions([1, 2, 10], policy, specific) == expected
    assert wanted_versions([], policy, specific) == []


def test_metadata_drives_the_input_spec(tmp_path):
    _version(tmp_path, "m", 1, color_mode="L", invert=True, resize="nearest")
    info = read_version(tmp_path / "m", 1)
    assert info.labels == ("a", "b") and info.input == InputSpec(28, 28, 1, "L", True, "nearest")
    with pytest.raises(ValueError, match="color_mode"):
        InputSpec.from_metadata({"height": 2, "width": 2, "channels": 3, "color_mode": "L"})
