"""artifact.metadata: round trip, validation naming the field, and old files."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

from artifact import metadata as md

SCHEMA_0 = Path(__file__).resolve().parents[1] / "data" / "metadata_schema0.json"


def full_metadata() -> md.Metadata:
    return md.Metadata(
        name="flowers", labels=["daisy", "tulip"], version=3,
        input=md.InputSpec.of(64, 48, "RGB", invert=False, resize="bicubic"),
        formats=md.Formats.all("int8"),
        parent={"name": "flowers", "version": 2, "path": "models/flowers/2"},
        sizes={"tflite": {"bytes": 10, "gzip_bytes": 8}},
        config={"train": {"epochs": 3}}, techniques={"batch_norm": True},
        dataset={"source": "folder", "train": {"sha256": "ab", "examples": 9}},
        metrics={"tflite": {"accuracy": 0.5}}, extra={"preset": "tiny", "stages": [{"stage": "int8"}]})


def test_round_trip_through_json_and_a_file(tmp_path):
    meta = full_metadata()
    assert md.Metadata.from_json(meta.to_json()) == meta
    md.write(tmp_path, meta)
    raw = json.loads((tmp_path / "metadata.json").read_text())
    assert raw["schema_version"] == md.SCHEMA_VERSION and raw["preset"] == "tiny" and "extra" not in raw
    assert raw["formats"]["saved_model"] == {"path": "saved_model", "signature": "serving_default",
                                             "input": "pixels", "output": "probabilities"}
    assert md.read(tmp_path) == meta


def test_numpy_values_are_written_as_json_numbers():
    meta = full_metadata().updated({"metrics": {"tflite": {"accuracy": np.float32(0.25), "n": np.int64(4)}}})
    assert json.loads(meta.to_json())["metrics"]["tflite"] == {"accuracy": 0.25, "n": 4}


def _mutate(data: dict, dotted: str, value):
    *path, last = dotted.split(".")
    for key in path:
        data = data[key]
    if value is KeyError:
        del data[last]
    else:
        data[last] = value


@pytest.mark.parametrize("field, value, message", [
    ("name", KeyError, "'name' is missing"),
    ("name", ".tmp-1", "'name' must be a non-empty directory name"),
    ("labels", [], "'labels' must be a non-empty list of strings"),
    ("labels", ["a", 2], "'labels' must be"),
    ("version", "3", "'version' must be a positive integer"),
    ("version", 0, "'version' must be a positive integer"),
    ("input", [1], "'input' must be an object"),
    ("input.height", 0, "'input.height' must be a positive integer"),
    ("input.width", KeyError, "'input.width' is missing"),
    ("input.color_mode", "CMYK", "'input.color_mode' must be one of L, RGB"),
    ("input.channels", 1, "'input.channels' must be 3 for color_mode RGB"),
    ("input.resize", "fancy", "'input.resize' must be one of"),
    ("input.dtype", "float32", "'input.dtype' must be uint8"),
    ("input.invert", "yes", "'input.invert' must be true or false"),
    ("input.mean", 0.5, "'input.mean' is not part of the schema"),
    ("formats.onnx", {"path": "m.onnx"}, "'formats.onnx' is not part of the schema"),
    ("formats.tflite.path", 7, "'formats.tflite.path' must be a non-empty string"),
    ("formats.saved_model.input", "", "'formats.saved_model.input' must be a non-empty string"),
    ("parent", {"path": "x"}, "'parent' must be null or an object with name and version"),
    ("metrics", [1], "'metrics' must be an object"),
    ("schema_version", "1", "'schema_version' must be a non-negative integer"),
    ("schema_version", 99, "schema_version 99 is newer than this code reads"),
])
def test_validation_names_the_field(field, value, message):
    data = full_metadata().to_dict()
    _mutate(data, field, value)
    with pytest.raises(md.MetadataError, match=message):
        md.Metadata.from_dict(data)


def test_read_names_the_file(tmp_path):
    (tmp_path / "metadata.json").write_text("{not json")
    with pytest.raises(md.MetadataError, match=re.escape(f"{tmp_path}/metadata.json: metadata is not valid JSON")):
        md.read(tmp_path)
    (tmp_path / "metadata.json").write_text(json.dumps({"name": "m", "labels": ["a"]}))
    with pytest.raises(md.MetadataError, match="metadata.json: metadata field 'input' is missing"):
        md.read(tmp_path)


def test_a_model_written_before_schema_versions_still_loads(tmp_path):
    # the metadata.json of the first committed models/fashion/1, as it was written
    version_dir = tmp_path / "fashion" / "1"
    version_dir.mkdir(parents=True)
    raw = json.loads(SCHEMA_0.read_text())
    (version_dir / "metadata.json").write_text(SCHEMA_0.read_text())
    (version_dir / "model.tflite").write_bytes(b"")            # format_path names files that exist
    assert "schema_version" not in raw                          # a schema-0 file, left as it is
    meta = md.read(version_dir)
    assert meta.schema_version == md.SCHEMA_VERSION
    assert (meta.name, meta.version, len(meta.labels), meta.input.shape) == ("fashion", 1, 10, (28, 28, 1))
    assert meta.format_path(version_dir, "tflite") == version_dir / "model.tflite"
    assert meta.config["model"]["name"] == "cnn" and meta.extra["preset"] == "default"
    assert meta.metrics["tflite"]["accuracy"] == raw["metrics"]["tflite"]["accuracy"]
    assert json.loads(meta.to_json()) == {**raw, "schema_version": md.SCHEMA_VERSION}


def test_schema_0_without_name_or_version_takes_them_from_its_directory(tmp_path):
    version_dir = tmp_path / "digits" / "4"
    version_dir.mkdir(parents=True)
    (version_dir / "metadata.json").write_text(json.dumps(
        {"labels": ["0", "1"], "input": {"height": 8, "width": 8, "channels": 1}, "formats": {}}))
    meta = md.read(version_dir)
    assert (meta.name, meta.version, meta.created) == ("digits", 4, None)
    assert meta.input == md.InputSpec(8, 8, 1, "L", False, "bilinear")
    assert (meta.input_name, meta.output_name) == (md.INPUT_NAME, md.OUTPUT_NAME)
    assert meta.format_path(version_dir, "saved_model") is None


def test_updated_validates_and_keeps_extra_blocks():
    meta = full_metadata().updated({"techniques": {"prune": 0.5}, "history": [1, 2]})
    assert meta.techniques == {"prune": 0.5} and meta.extra["history"] == [1, 2]
    with pytest.raises(md.MetadataError, match="'input.height'"):
        full_metadata().updated({"input": {"height": -1, "width": 2, "channels": 1}})
