"""Version labels of a model: which version answers by default (``stable``) and which one,
if any, takes a share of the traffic first (``canary``).

``<models_dir>/<name>/labels.json``, written atomically (a temporary file renamed over
it) so a reader sees the old labels or the new, never half of them::

    {"stable": 3, "canary": {"version": 4, "percent": 30, "shadow": false}}

- ``stable``: the version that answers requests that name no version; without a labels
  file (or with ``stable`` null) the newest published version, as before labels existed.
- ``canary``: optional. ``percent`` of the requests that name no version go to it
  (0-100); with ``shadow`` true it answers none of them but sees a copy of stable's
  traffic, and only the agreement is recorded.

A label naming a version that is not published (retired meanwhile) is treated as
absent by readers, so a rollback never leaves the service pointing at nothing. Writers
(``python -m training label``, ``rollback``, ``retrain``) hold the model's lock
(``artifact.locks``).
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from artifact.metadata import MetadataError
from artifact.versions import versions

LABELS = "labels.json"
STABLE, CANARY = "stable", "canary"


@dataclass(frozen=True)
class Canary:
    version: int
    percent: float = 0.0                # share of unpinned requests it answers, 0-100
    shadow: bool = False                # answers none: mirrors stable's traffic for comparison

    def __post_init__(self):
        if not (isinstance(self.version, int) and not isinstance(self.version, bool) and self.version > 0):
            raise MetadataError(f"labels: canary version must be a positive integer, got {self.version!r}")
        if not (isinstance(self.percent, (int, float)) and not isinstance(self.percent, bool)
                and 0 <= self.percent <= 100):
            raise MetadataError(f"labels: canary percent must be within 0-100, got {self.percent!r}")
        if not isinstance(self.shadow, bool):
            raise MetadataError(f"labels: canary shadow must be true or false, got {self.shadow!r}")


@dataclass(frozen=True)
class Labels:
    stable: Optional[int] = None        # None: the newest published version
    canary: Optional[Canary] = None

    def __post_init__(self):
        if self.stable is not None and not (isinstance(self.stable, int) and not isinstance(self.stable, bool)
                                            and self.stable > 0):
            raise MetadataError(f"labels: stable must be a positive integer or null, got {self.stable!r}")

    def to_dict(self) -> dict:
        return {STABLE: self.stable, CANARY: asdict(self.canary) if self.canary else None}

    @classmethod
    def from_dict(cls, data: dict) -> "Labels":
        if not isinstance(data, dict) or set(data) - {STABLE, CANARY}:
            raise MetadataError(f"labels: expected an object with '{STABLE}' and '{CANARY}', got {data!r}")
        canary = data.get(CANARY)
        if canary is not None and not isinstance(canary, dict):
            raise MetadataError(f"labels: canary must be an object or null, got {canary!r}")
        try:
            return cls(data.get(STABLE), Canary(**canary) if canary else None)
        except TypeError as exc:           # unknown or missing canary keys
            raise MetadataError(f"labels: bad canary {canary!r}: {exc}") from None


def path(models_dir, name: str) -> Path:
    return Path(models_dir) / name / LABELS


def read(models_dir, name: str) -> Labels:
    """The labels as written (``Labels()`` when there is no file)."""
    file = path(models_dir, name)
    if not file.is_file():
        return Labels()
    try:
        return Labels.from_dict(json.loads(file.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise MetadataError(f"{file}: not valid JSON ({exc})") from None


def write(models_dir, name: str, labels: Labels) -> Path:
    """Replace the labels atomically; the versions they name must be published."""
    published = versions(models_dir, name)
    for label, version in ((STABLE, labels.stable), (CANARY, labels.canary.version if labels.canary else None)):
        if version is not None and version not in published:
            raise MetadataError(f"labels: {label} names version {version} of '{name}', which is not published "
                                f"(published: {published or 'none'})")
    if labels.canary and labels.canary.version == effective(labels, published).stable:
        raise MetadataError(f"labels: version {labels.canary.version} cannot be both stable and canary")
    target = path(models_dir, name)
    fd, tmp = tempfile.mkstemp(prefix=".labels-", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(labels.to_dict(), indent=1) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def effective(labels: Labels, published: list) -> Labels:
    """What the labels mean for the versions published now: ``stable`` filled in (the newest
    when unset or no longer published), a canary on a version no longer published dropped."""
    stable = labels.stable if labels.stable in published else (published[-1] if published else None)
    canary = labels.canary if labels.canary and labels.canary.version in published else None
    if canary is not None and canary.version == stable:
        canary = None
    return Labels(stable, canary)
