"""The evaluate command's reports, for a published version or a training checkpoint."""
from __future__ import annotations

import json
from pathlib import Path

from .data import Dataset
from .evaluate import classification_report, evaluate_artifact, plot_confusion
from .train import predict_probabilities


def evaluate_published(directory: Path, test: Dataset, out_dir: Path) -> dict:
    """Reports and confusion-matrix PNGs for a published version's SavedModel and TFLite."""
    reports = evaluate_artifact(directory, test, out_dir)
    (Path(out_dir) / "report.json").write_text(json.dumps(reports, indent=2))
    return reports


def evaluate_keras(model, test: Dataset, out_dir: Path, title: str) -> dict:
    report = classification_report(test.y, predict_probabilities(model, test).argmax(1), test.class_names)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    plot_confusion(report, test.class_names, Path(out_dir) / "confusion_keras.png", title)
    (Path(out_dir) / "report_keras.json").write_text(json.dumps(report, indent=2))
    return report
