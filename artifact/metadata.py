"""``metadata.json``: what a published version is and how to feed it.

One dataclass tree, one JSON round trip, one validation. Every violation raises
``MetadataError`` naming the field (``input.height``, ``formats.tflite.path``).
Files written before the schema had a version (no ``schema_version``, the
committed ``models/fashion/1`` among them) are read as schema 0 and upgraded in
memory; nothing on disk is rewritten.
"""
from __future__ import annotations

import datetime
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Optional

import numpy as np

from . import drift

SCHEMA_VERSION = 1
FILENAME = "metadata.json"
SIGNATURE = "serving_default"
INPUT_NAME = "pixels"            # the serving signature's input and output tensors
OUTPUT_NAME = "probabilities"
# A second output of the serving signature (and the TFLite file) of versions published since
# the energy rule: per image -T * logsumexp(logits / T), T the baked-in temperature
# (docs/service.md "Unfamiliar inputs"). Older versions lack it; runners pick outputs by name.
ENERGY_NAME = "energy"
CHANNELS = {"L": 1, "RGB": 3}    # colour mode -> channels of the model input
RESAMPLING = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


class MetadataError(ValueError):
    """metadata.json does not follow the schema; the message names the field."""


def _fail(where: str, expected: str, value) -> None:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    raise MetadataError(f"metadata field '{where}' must be {expected}, got {shown}")


def _check(ok: bool, where: str, expected: str, value) -> None:
    if not ok:
        _fail(where, expected, value)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require(data: dict, key: str, where: str) -> None:
    if key not in data:
        raise MetadataError(f"metadata field '{where}' is missing")


def _section(data, where: str, keys: tuple) -> dict:
    """``data`` as a dict holding only ``keys`` (an unknown key is a typo, not data)."""
    _check(isinstance(data, dict), where, "an object", data)
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise MetadataError(f"metadata field '{where}.{unknown[0]}' is not part of the schema "
                            f"(known: {', '.join(keys)})")
    return data


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class InputSpec:
    """How an image becomes the model's uint8 [H,W,C] input (see ``artifact.imaging``)."""

    height: int
    width: int
    channels: int
    color_mode: str            # "L" or "RGB"
    invert: bool = False       # 255 - x after resizing
    resize: str = "bilinear"   # Pillow resampling filter
    dtype: str = "uint8"

    def __post_init__(self):
        for name in ("height", "width"):
            value = getattr(self, name)
            _check(_is_int(value) and value > 0, f"input.{name}", "a positive integer", value)
        _check(isinstance(self.color_mode, str) and self.color_mode in CHANNELS, "input.color_mode", f"one of {', '.join(CHANNELS)}", self.color_mode)
        _check(self.channels == CHANNELS[self.color_mode], "input.channels",
               f"{CHANNELS[self.color_mode]} for color_mode {self.color_mode}", self.channels)
        _check(isinstance(self.invert, bool), "input.invert", "true or false", self.invert)
        _check(self.resize in RESAMPLING, "input.resize", f"one of {', '.join(RESAMPLING)}", self.resize)
        _check(self.dtype == "uint8", "input.dtype", "uint8", self.dtype)

    @classmethod
    def of(cls, height: int, width: int, color_mode: str, **options) -> "InputSpec":
        return cls(height, width, CHANNELS.get(color_mode, 0), color_mode, **options)

    @property
    def shape(self) -> tuple:
        return (self.height, self.width, self.channels)

    @classmethod
    def from_dict(cls, data) -> "InputSpec":
        data = _section(data, "input", tuple(f.name for f in fields(cls)))
        for key in ("height", "width", "channels"):
            _require(data, key, f"input.{key}")
        mode = data.get("color_mode") or ("L" if data["channels"] == 1 else "RGB")
        return cls(data["height"], data["width"], data["channels"], mode, data.get("invert", False),
                   str(data.get("resize", "bilinear")).lower(), data.get("dtype", "uint8"))

    def to_dict(self) -> dict:
        return {"height": self.height, "width": self.width, "channels": self.channels, "dtype": self.dtype,
                "color_mode": self.color_mode, "invert": self.invert, "resize": self.resize}


@dataclass
class SavedModelFormat:
    path: str = "saved_model"
    signature: str = SIGNATURE
    input: str = INPUT_NAME
    output: str = OUTPUT_NAME


@dataclass
class TFLiteFormat:
    path: str = "model.tflite"
    quantization: str = "none"   # none, dynamic, float16, int8, qat or a test variant


@dataclass
class KerasFormat:
    path: str = "keras_weights.h5"   # weights for retraining; the builder is the stored config
    builder: str = "config.model"


FORMAT_TYPES = {"saved_model": SavedModelFormat, "tflite": TFLiteFormat, "keras": KerasFormat}


@dataclass
class Formats:
    """The files of a version; a format that was not exported is None."""

    saved_model: Optional[SavedModelFormat] = None
    tflite: Optional[TFLiteFormat] = None
    keras: Optional[KerasFormat] = None

    @classmethod
    def all(cls, quantization: str = "none") -> "Formats":
        return cls(SavedModelFormat(), TFLiteFormat(quantization=quantization), KerasFormat())

    @classmethod
    def from_dict(cls, data) -> "Formats":
        data = _section(data, "formats", tuple(FORMAT_TYPES))
        found = {}
        for name, entry in data.items():
            kind = FORMAT_TYPES[name]
            entry = _section(entry, f"formats.{name}", tuple(f.name for f in fields(kind)))
            for key, value in entry.items():
                _check(isinstance(value, str) and value, f"formats.{name}.{key}", "a non-empty string", value)
            found[name] = kind(**entry)
        return cls(**found)

    def to_dict(self) -> dict:
        return {name: asdict(entry) for name in FORMAT_TYPES if (entry := getattr(self, name)) is not None}


CORE_KEYS = ("schema_version", "name", "version", "created", "labels", "input", "formats", "parent",
             "sizes", "config", "techniques", "dataset", "metrics")


@dataclass
class Metadata:
    """One version's metadata.json. ``extra`` keeps further blocks a writer adds
    (preset, training history, compression stages...) verbatim at the top level."""

    name: str
    labels: list
    input: InputSpec
    version: Optional[int] = None       # None while staged; publish() sets it
    created: Optional[str] = field(default_factory=utc_now)   # UTC ISO-8601; None in old files
    formats: Formats = field(default_factory=Formats)
    parent: Optional[dict] = None       # {"name", "version", "path"} of the version this came from
    sizes: dict = field(default_factory=dict)        # format -> bytes, gzip_bytes
    config: dict = field(default_factory=dict)       # the training config as it ran
    techniques: dict = field(default_factory=dict)   # what was applied, with its settings
    dataset: dict = field(default_factory=dict)      # source, path and split fingerprints
    metrics: dict = field(default_factory=dict)      # format -> accuracy and sizes, per class
    extra: dict = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self):
        _check(isinstance(self.name, str) and self.name and not self.name.startswith(".") and "/" not in self.name,
               "name", "a non-empty directory name", self.name)
        _check(isinstance(self.labels, list) and self.labels and all(isinstance(x, str) for x in self.labels),
               "labels", "a non-empty list of strings", self.labels)
        _check(isinstance(self.input, InputSpec), "input", "an InputSpec", self.input)
        _check(self.version is None or (_is_int(self.version) and self.version > 0),
               "version", "a positive integer", self.version)
        _check(self.created is None or isinstance(self.created, str), "created", "an ISO-8601 string", self.created)
        _check(isinstance(self.formats, Formats), "formats", "a Formats", self.formats)
        _check(self.parent is None or (isinstance(self.parent, dict) and {"name", "version"} <= set(self.parent)),
               "parent", "null or an object with name and version", self.parent)
        for key in ("sizes", "config", "techniques", "dataset", "metrics", "extra"):
            _check(isinstance(getattr(self, key), dict), key, "an object", getattr(self, key))
        clash = sorted(set(self.extra) & set(CORE_KEYS))
        _check(not clash, f"extra.{clash[0] if clash else ''}", "a key outside the core schema", clash)
        _check(self.schema_version == SCHEMA_VERSION, "schema_version", str(SCHEMA_VERSION), self.schema_version)
        if self.extra.get(drift.BLOCK) is not None:
            try:
                drift.Reference.from_dict(self.extra[drift.BLOCK], self.labels)
            except ValueError as exc:
                raise MetadataError(f"metadata field {exc}") from None

    @property
    def input_name(self) -> str:
        return self.formats.saved_model.input if self.formats.saved_model else INPUT_NAME

    @property
    def output_name(self) -> str:
        return self.formats.saved_model.output if self.formats.saved_model else OUTPUT_NAME

    @property
    def drift_reference(self) -> Optional[drift.Reference]:
        """The optional ``drift_reference`` block (``artifact/drift.py``): the version's answers
        on its validation split, recorded at publish; None for versions published before it."""
        block = self.extra.get(drift.BLOCK)
        return drift.Reference.from_dict(block, self.labels) if block is not None else None

    def format_path(self, directory, fmt: str) -> Optional[Path]:
        """The file or directory of ``fmt`` inside a version directory, if it was exported and is there."""
        entry = getattr(self.formats, fmt)
        path = Path(directory) / entry.path if entry is not None else None
        return path if path is not None and path.exists() else None

    def to_dict(self) -> dict:
        data = {key: getattr(self, key) for key in CORE_KEYS}
        data.update(input=self.input.to_dict(), formats=self.formats.to_dict(), **self.extra)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=_jsonable)

    def updated(self, blocks: dict) -> "Metadata":
        """A validated copy with top-level ``blocks`` set (core fields or extra ones)."""
        return Metadata.from_dict({**self.to_dict(), **blocks})

    @classmethod
    def from_dict(cls, data, directory=None) -> "Metadata":
        """Validate and build; ``directory`` (the version dir) fills what schema 0 files may lack."""
        _check(isinstance(data, dict), "(top level)", "an object", data)
        schema = data.get("schema_version", 0)
        _check(_is_int(schema) and 0 <= schema, "schema_version", "a non-negative integer", schema)
        if schema > SCHEMA_VERSION:
            raise MetadataError(f"metadata schema_version {schema} is newer than this code reads "
                                f"({SCHEMA_VERSION}); update the project")
        if schema == 0:
            data = _upgrade_from_0(data, directory)
        for key in ("name", "labels", "input"):
            _require(data, key, key)
        core = {key: data[key] for key in CORE_KEYS if key in data}
        core.update(input=InputSpec.from_dict(data["input"]), formats=Formats.from_dict(data.get("formats", {})))
        for key in ("sizes", "config", "techniques", "dataset", "metrics"):
            if core.get(key, {}) is None:   # null in a file means "none recorded"
                core[key] = {}
        return cls(**core, extra={k: v for k, v in data.items() if k not in CORE_KEYS})

    @classmethod
    def from_json(cls, text: str, directory=None) -> "Metadata":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise MetadataError(f"metadata is not valid JSON: {exc}") from None
        return cls.from_dict(data, directory)


def _upgrade_from_0(data: dict, directory) -> dict:
    """Schema 0 (before schema_version): name and version may be missing (the
    directory ``<name>/<version>`` they were published under supplies them), and
    readers took any label as its string."""
    data = {**data, "schema_version": SCHEMA_VERSION}
    if isinstance(data.get("labels"), list):
        data["labels"] = [str(label) for label in data["labels"]]
    if directory is not None:
        directory = Path(directory)
        data.setdefault("name", directory.parent.name)
        if "version" not in data and directory.name.isdigit():
            data["version"] = int(directory.name)
    data.setdefault("created", None)
    return data


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read(directory) -> Metadata:
    """The metadata of a version directory; errors name the file and the field."""
    path = Path(directory) / FILENAME
    text = path.read_text(encoding="utf-8")
    try:
        return Metadata.from_json(text, directory)
    except MetadataError as exc:
        raise MetadataError(f"{path}: {exc}") from None


def write(directory, metadata: Metadata) -> Path:
    path = Path(directory) / FILENAME
    path.write_text(metadata.to_json(), encoding="utf-8")
    return path
