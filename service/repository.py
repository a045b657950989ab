"""The service's view of the model repository: what a served version is, and
which versions the policy serves.

Listing and reading the layout ``<root>/<name>/<integer version>/`` belong to
``artifact`` (hidden staging dirs and non-integer names are never listed);
loading and swapping live in ``registry``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from artifact import metadata as md
from artifact.versions import scan

from . import energy
from .confidence import version_default

__all__ = ["VersionInfo", "read_version", "scan", "wanted_versions"]


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: int
    path: Path
    metadata: md.Metadata

    # Read on every request: computed once per version (a frozen dataclass: nothing changes).
    @cached_property
    def labels(self) -> tuple:
        return tuple(self.metadata.labels)

    @cached_property
    def input(self) -> md.InputSpec:
        return self.metadata.input

    @cached_property
    def min_confidence(self) -> float:
        """Below this top probability an answer is withheld, unless the request or
        SERVICE_MIN_CONFIDENCE says otherwise (``service/confidence.py``)."""
        return version_default(self.metadata)

    @cached_property
    def max_energy(self) -> float:
        """Above this energy an answer is withheld as unfamiliar, unless the request or
        SERVICE_MAX_ENERGY says otherwise (``service/energy.py``); inf: no limit."""
        return energy.version_default(self.metadata)

    def format_path(self, fmt: str) -> Path | None:
        return self.metadata.format_path(self.path, fmt)


def read_version(model_dir: Path, version: int) -> VersionInfo:
    path = Path(model_dir) / str(version)
    return VersionInfo(Path(model_dir).name, version, path, md.read(path))


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
