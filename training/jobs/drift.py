"""``python -m training drift``: the service's captured answers of a model's served version
compared with the reference that version recorded at publish, with a plot; and recording
that reference for a version published before references existed.

The captures are ``<capture_dir>/index.jsonl``, written by the service when it captures: one JSON object per
captured image with ``model``, ``version``, ``time`` and ``probabilities`` (in the version's
class order). Only the served version's entries are read (``--version`` picks another). The
test is the service's (``artifact.drift``): on all those entries at once, and on each run of
``window`` consecutive entries, as the service's sliding window would have seen them.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import numpy as np

from artifact import drift
from artifact import labels as lb
from artifact import metadata as md
from artifact.locks import model_lock

from training.data.datasets import DataError
from training.jobs.labels import require_model

INDEX = "index.jsonl"


class DriftError(DataError):
    """The drift report cannot be made as asked (no captures, no reference...): exit 2."""


def served_version(models_dir, name: str, published: list) -> int:
    """The stable version: the labelled one, else the newest published."""
    return lb.effective(lb.read(models_dir, name), published).stable


def version_reference(models_dir, name: str, version: int) -> tuple:
    """(metadata, Reference) of a published version; refused when it has no reference."""
    meta = md.read(Path(models_dir) / name / str(version))
    reference = meta.drift_reference
    if reference is None:
        raise DriftError(f"version {version} of '{name}' has no {drift.BLOCK} in its metadata.json (published "
                         f"before references were recorded); record one with: python -m training drift --name "
                         f"{name} --record-reference --version {version}")
    return meta, reference


def read_captures(capture_dir, name: str, version: int, classes: int) -> tuple:
    """(probabilities [N, K], times) of the captured entries of ``name`` version ``version``,
    in file order; a line that is not a capture entry is refused with its number."""
    index = Path(capture_dir) / INDEX
    if not index.is_file():
        raise DriftError(f"no captures: {index} does not exist (the service writes it with capture on)")
    rows, times, others = [], [], {}
    with open(index, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                model, entry_version = entry["model"], int(entry["version"])
            except (ValueError, TypeError, KeyError):
                raise DriftError(f"{index} line {number} is not a capture entry (a JSON object with model, "
                                 "version and probabilities)") from None
            if model != name:
                continue
            if entry_version != version:
                others[entry_version] = others.get(entry_version, 0) + 1
                continue
            probabilities = entry.get("probabilities")
            if not isinstance(probabilities, list) or len(probabilities) != classes:
                raise DriftError(f"{index} line {number}: probabilities must be a list of {classes} numbers "
                                 f"(version {version}'s classes)")
            rows.append(probabilities)
            times.append(entry.get("time"))
    if not rows:
        seen = f" (captured versions of '{name}': {sorted(others)})" if others else ""
        raise DriftError(f"no captures of '{name}' version {version} in {index}{seen}")
    if len(rows) < drift.MIN_IMAGES:
        raise DriftError(f"only {len(rows)} captures of '{name}' version {version} in {index}; the drift test "
                         f"needs at least {drift.MIN_IMAGES}")
    try:
        probabilities = np.asarray(rows, np.float64)
    except ValueError:
        raise DriftError(f"{index}: probabilities of '{name}' version {version} are not all numbers") from None
    return probabilities, times


def windows(reference: drift.Reference, probabilities: np.ndarray, size: int) -> list:
    """The test on each run of ``size`` consecutive entries (the last partial run too, when it
    holds at least MIN_IMAGES)."""
    out = []
    for start in range(0, len(probabilities), size):
        chunk = probabilities[start:start + size]
        if len(chunk) >= drift.MIN_IMAGES:
            out.append({"first": start, **drift.compare_probabilities(reference, chunk).to_dict()})
    return out


def plot(reference: drift.Reference, probabilities: np.ndarray, result: drift.Result, path: Path,
         title: str) -> None:
    """Reference against captured: predicted-class shares, and top-1 probability histograms on the
    reference's fixed bins."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    predicted, confidence = drift.top1(probabilities)
    shares = np.bincount(predicted, minlength=len(reference.labels))[:len(reference.labels)] / len(predicted)
    hist, _ = np.histogram(np.clip(confidence, 0, 1), bins=drift.CONFIDENCE_EDGES)
    fig, (classes, conf) = plt.subplots(2, 1, figsize=(8, 7))
    x = np.arange(len(reference.labels))
    classes.bar(x - 0.2, reference.class_shares, width=0.4, label=f"reference ({reference.examples} validation)")
    classes.bar(x + 0.2, shares, width=0.4, label=f"captured ({len(predicted)})")
    classes.set_xticks(x, reference.labels, rotation=30, ha="right")
    classes.set_ylabel("share of predictions")
    classes.set_ylim(0, 1.3 * max(float(reference.class_shares.max()), float(shares.max())))   # room for the legend
    classes.set_title(f"{title}: p = {result.p_value:.3g} (chi2 p {result.chi2_p:.3g}, KS p {result.ks_p:.3g})")
    classes.legend()
    bins = np.arange(len(drift.CONFIDENCE_EDGES) - 1)
    names = [f"{a:g}-{b:g}" for a, b in zip(drift.CONFIDENCE_EDGES, drift.CONFIDENCE_EDGES[1:])]
    conf.bar(bins - 0.2, reference.confidence_shares, width=0.4, label="reference")
    conf.bar(bins + 0.2, hist / len(predicted), width=0.4, label="captured")
    conf.set_xticks(bins, names, rotation=30, ha="right")
    conf.set_xlabel("top-1 probability")
    conf.set_ylabel("share of images")
    conf.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(models_dir, name: str, capture_dir, version: Optional[int] = None, window: int = 500,
           out: Optional[str] = None, alpha: float = drift.ALPHA) -> dict:
    """The drift report of the captures of ``name``'s served version (or ``version``); the plot
    goes to ``out`` (default ``drift-<name>-v<version>.png`` here)."""
    if window < drift.MIN_IMAGES:
        raise DriftError(f"--window must be at least {drift.MIN_IMAGES}, got {window}")
    published = require_model(models_dir, name)
    if version is None:
        version = served_version(models_dir, name, published)
    elif version not in published:
        raise DriftError(f"'{name}' has no published version {version} (published: {published})")
    meta, reference = version_reference(models_dir, name, version)
    probabilities, times = read_captures(capture_dir, name, version, len(meta.labels))
    result = drift.compare_probabilities(reference, probabilities)
    runs = windows(reference, probabilities, window)
    path = Path(out) if out else Path(f"drift-{name}-v{version}.png")
    if path.parent != Path(""):
        path.parent.mkdir(parents=True, exist_ok=True)
    plot(reference, probabilities, result, path, f"{name} v{version}")
    return {"model": name, "version": version, "captures": len(probabilities),
            "first": times[0], "last": times[-1], "alpha": alpha, "drifted": result.drifted(alpha),
            **result.to_dict(),
            "reference": {"split": reference.block.get("split"), "examples": reference.examples},
            "windows": {"size": window, "tested": len(runs), "alarms": sum(r["p_value"] < alpha for r in runs),
                        "p_values": [r["p_value"] for r in runs]},
            "plot": str(path)}


def record_reference(models_dir, name: str, version: int, wait: float = 60.0) -> dict:
    """Add a ``drift_reference`` to a published version that has none, computed as publish
    computes it (``training.publish.release.drift_reference``) on the version's own validation
    split, reloaded from its recorded data config and checked against its recorded fingerprint.
    Every other byte of metadata.json stays as it is (the block is appended); nothing else
    in the version changes."""
    from training.config import load_config
    from training.data.datasets import load_data
    from training.publish.release import drift_reference

    published = require_model(models_dir, name)
    if version not in published:
        raise DriftError(f"'{name}' has no published version {version} (published: {published})")
    directory = Path(models_dir) / name / str(version)
    path = directory / md.FILENAME
    meta = md.read(directory)
    if meta.extra.get(drift.BLOCK) is not None:
        raise DriftError(f"version {version} of '{name}' already has a {drift.BLOCK}")
    recorded = (meta.dataset.get("validation") or {}).get("sha256")
    if not recorded or not meta.config:
        raise DriftError(f"version {version} of '{name}' records no validation split to compute a reference on")
    validation = load_data(load_config(base=meta.config).data)[1]
    if validation.fingerprint()["sha256"] != recorded:
        raise DriftError(f"the validation split loaded from version {version}'s config is not the one it "
                         f"recorded (sha256 {recorded[:12]}...): is the data set where it was?")
    block = drift_reference(directory, meta, validation)
    if block is None:
        raise DriftError(f"version {version}'s validation split holds fewer than {drift.MIN_IMAGES} images")
    with model_lock(models_dir, name, job="drift-reference", wait=wait):
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
        if json.dumps(data, indent=2) != text:
            raise DriftError(f"{path} is not as publish writes it (json, indent 2); not rewritten")
        data[drift.BLOCK] = block
        md.Metadata.from_dict(data, directory)          # still valid, the block included
        temporary = path.with_name(f".{md.FILENAME}.tmp")
        temporary.write_text(json.dumps(data, indent=2), encoding="utf-8")
        os.replace(temporary, path)
    return {"model": name, "version": version, "recorded": drift.BLOCK, "examples": block["examples"],
            "format": block["format"], "metadata": str(path)}
