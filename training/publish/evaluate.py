"""Accuracy, per-class precision/recall/F1 and a confusion matrix, for any of the
three forms of a model: the Keras model, the exported SavedModel, the TFLite file."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from artifact import metadata as md
from artifact.imaging import decode_image
from artifact.litert import LiteRTRunner
from artifact.saved_model import SavedModelRunner

from training.data.datasets import Dataset
from training.fit.train import predict_probabilities

FORMATS = ("saved_model", "tflite")


def version_runner(directory: Path, fmt: str, meta: md.Metadata = None):
    """The runner the service uses for a published version's ``fmt`` (saved_model or tflite)."""
    meta = meta or md.read(directory)
    path = meta.format_path(directory, fmt)
    if path is None:
        raise FileNotFoundError(f"{directory} has no {fmt}")
    if fmt == "saved_model":
        return SavedModelRunner.for_format(directory, meta.formats.saved_model)
    return LiteRTRunner(path)


def predict_saved_model(directory: Path, x: np.ndarray) -> np.ndarray:
    return version_runner(directory, "saved_model").predict(x)


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, class_names: list) -> dict:
    k = len(class_names)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    per_class = {}
    for i, name in enumerate(class_names):
        tp = confusion[i, i]
        precision = tp / max(confusion[:, i].sum(), 1)
        recall = tp / max(confusion[i].sum(), 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        per_class[name] = {"precision": round(float(precision), 4), "recall": round(float(recall), 4),
                           "f1": round(float(f1), 4), "support": int(confusion[i].sum())}
    return {"accuracy": float(np.mean(y_true == y_pred)), "examples": int(len(y_true)),
            "per_class": per_class, "confusion": confusion.tolist()}


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
    """Reports for the SavedModel and the TFLite file of a published version."""
    directory = Path(directory)
    meta = md.read(directory)
    results = {}
    for fmt in FORMATS:
        probs = version_runner(directory, fmt, meta).predict(test.x)
        report = classification_report(test.y, probs.argmax(1), meta.labels)
        results[fmt] = report
        if out_dir is not None:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            plot_confusion(report, meta.labels, Path(out_dir) / f"confusion_{fmt}.png",
                           f"{meta.name} v{meta.version} {fmt}")
    return results


def predict_files(directory: Path, paths: list) -> list:
    """Per image file, the probabilities of each format, decoded as the service decodes an upload."""
    directory = Path(directory)
    meta = md.read(directory)
    pixels = np.stack([decode_image(Path(p), meta.input) for p in paths])
    probs = {fmt: version_runner(directory, fmt, meta).predict(pixels) for fmt in FORMATS}
    return [{"file": str(p), **{fmt: probs[fmt][i].tolist() for fmt in FORMATS}} for i, p in enumerate(paths)]


def evaluate_published(directory: Path, test: Dataset, out_dir: Path) -> dict:
    """Reports and confusion-matrix PNGs for a published version's SavedModel and TFLite."""
    reports = evaluate_artifact(directory, test, out_dir)
    (Path(out_dir) / "report.json").write_text(json.dumps(reports, indent=2))
    return reports


def evaluate_keras(model, test: Dataset, out_dir: Path, title: str) -> dict:
    """The same report for a Keras model (a training checkpoint)."""
    report = classification_report(test.y, predict_probabilities(model, test).argmax(1), test.class_names)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    plot_confusion(report, test.class_names, Path(out_dir) / "confusion_keras.png", title)
    (Path(out_dir) / "report_keras.json").write_text(json.dumps(report, indent=2))
    return report
