"""The model repository on disk: ``<root>/<name>/<integer version>/``.

Only reads the file system; loading and swapping live in ``registry``.
A version directory appears atomically (os.rename from a hidden temporary
directory), so hidden names (leading ".") and non-integer names are ignored.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

RESAMPLING = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


@dataclass(frozen=True)
class InputSpec:
    height: int
    width: int
    channels: int
    color_mode: str      # "L" or "RGB"
    invert: bool         # apply 255 - x after resizing
    resize: str          # Pillow resampling filter name

    @classmethod
    def from_metadata(cls, data: dict) -> "InputSpec":
        channels = int(data.get("channels", 1))
        mode = data.get("color_mode") or ("L" if channels == 1 else "RGB")
        resize = str(data.get("resize", "bilinear")).lower()
        if mode not in ("L", "RGB") or {"L": 1, "RGB": 3}[mode] != channels:
            raise ValueError(f"input color_mode {mode!r} does not match channels {channels}")
        if resize not in RESAMPLING:
            raise ValueError(f"input resize {resize!r} is not one of {RESAMPLING}")
        if data.get("dtype", "uint8") != "uint8":
            raise ValueError("only uint8 pixel input is supported")
        return cls(int(data["height"]), int(data["width"]), channels, mode,
                   bool(data.get("invert", False)), resize)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: int
    path: Path
    labels: tuple[str, ...]
    input: InputSpec
    formats: dict
    metadata: dict

    def format_path(self, fmt: str) -> Path | None:
        entry = self.formats.get(fmt)
        if not entry:
            return None
        path = self.path / entry.get("path", {"saved_model": "saved_model", "tflite": "model.tflite"}[fmt])
        return path if path.exists() else None


def read_version(model_dir: Path, version: int) -> VersionInfo:
    path = model_dir / str(version)
    with open(path / "metadata.json", encoding="utf-8") as fh:
        meta = json.load(fh)
    labels = tuple(str(label) for label in meta["labels"])
    if not labels:
        raise ValueError("metadata.json has no labels")
    return VersionInfo(model_dir.name, version, path, labels,
                       InputSpec.from_metadata(meta["input"]), dict(meta.get("formats", {})), meta)


def _is_visible(name: str) -> bool:
    return not name.startswith(".")


def scan(root: str | os.PathLike) -> dict[str, list[int]]:
    """Model name -> sorted published versions (those with a metadata.json)."""
    root = Path(root)
    found: dict[str, list[int]] = {}
    if not root.is_dir():
        return found
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir() and _is_visible(p.name)):
        versions = []
        for entry in model_dir.iterdir():
            if _is_visible(entry.name) and entry.name.isdigit() and (entry / "metadata.json").is_file():
                versions.append(int(entry.name))
        found[model_dir.name] = sorted(versions)
    return found


def wanted_versions(available: list[int], policy: str, specific: list[int]) -> list[int]:
    """Which of the available versions the policy says to serve."""
    if not available:
        return []
    if policy == "latest":
        return [max(available)]
    if policy == "all":
        return sorted(available)
    if policy == "specific":
        return sorted(set(available) & set(specific))
    raise ValueError(f"unknown version policy {policy!r}")
