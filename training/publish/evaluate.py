"""The ``evaluate`` command's reports: accuracy, per-class precision/recall/F1 and a
confusion matrix (JSON and PNG) for a published version's formats, scored as the
service runs them, or for a training checkpoint's Keras model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from artifact import metadata as md
from artifact.imaging import decode_image

from training.data.datasets import Dataset
from training.fit.train import predict_probabilities
from training.publish.calibration import reliability_diagram
from training.publish.scoring import FORMATS, score, score_version, version_runner

def plot_confusion(report: dict, class_names: list, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    confusion = np.asarray(report["confusion"])
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}: accuracy {report['accuracy']:.4f}")
    for (i, j), v in np.ndenumerate(confusion):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                color="white" if v > confusion.max() / 2 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def evaluate_artifact(directory: Path, test: Dataset, out_dir: Path = None) -> dict:
    """Reports for every format of a published version (and confusion PNGs under ``out_dir``)."""
    directory = Path(directory)
    meta = md.read(directory)
    scores = score_version(directory, test, meta)
    results = {fmt: measured.report() for fmt, measured in scores.items()}
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        for fmt, report in results.items():
            plot_confusion(report, test.class_names, Path(out_dir) / f"confusion_{fmt}.png",
                           f"{meta.name} v{meta.version} {fmt}")
        plot_reliability(scores, test, Path(out_dir), f"{meta.name} v{meta.version}")
    return results


def plot_reliability(scores: dict, test: Dataset, out_dir: Path, title: str) -> None:
    """reliability_<fmt>.png per format whose probabilities were measured (ECE in the title)."""
    for fmt, measured in scores.items():
        if measured.probabilities is not None:
            reliability_diagram(measured.probabilities, test.y, out_dir / f"reliability_{fmt}.png", f"{title} {fmt}")


def predict_files(directory: Path, paths: list) -> list:
    """Per image file, the probabilities of each format, decoded as the service decodes an upload."""
    directory = Path(directory)
    meta = md.read(directory)
    pixels = np.stack([decode_image(Path(p), meta.input) for p in paths])
    formats = [fmt for fmt in FORMATS if meta.format_path(directory, fmt) is not None]   # a serve image's: tflite
    probs = {fmt: version_runner(directory, fmt, meta).predict(pixels) for fmt in formats}
    return [{"file": str(p), **{fmt: probs[fmt][i].tolist() for fmt in formats}} for i, p in enumerate(paths)]


def evaluate_published(directory: Path, test: Dataset, out_dir: Path) -> dict:
    """Reports and confusion-matrix PNGs for a published version's SavedModel and TFLite."""
    reports = evaluate_artifact(directory, test, out_dir)
    (Path(out_dir) / "report.json").write_text(json.dumps(reports, indent=2))
    return reports


def evaluate_keras(model, test: Dataset, out_dir: Path, title: str) -> dict:
    """The same report for a Keras model (a training checkpoint)."""
    report = score(test.y, predict_probabilities(model, test).argmax(1), test.class_names).report()
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    plot_confusion(report, test.class_names, Path(out_dir) / "confusion_keras.png", title)
    (Path(out_dir) / "report_keras.json").write_text(json.dumps(report, indent=2))
    return report
