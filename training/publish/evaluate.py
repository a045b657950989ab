"""The ``evaluate`` command's reports: accuracy, per-class precision/recall/F1 and a
confusion matrix (JSON and PNG) for a published version's formats, scored as the
service runs them, or for a training checkpoint's Keras model; for a published version
also the accuracy / coverage table and curve behind the service's ``min_confidence``."""
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
    """Reports for every format of a published version, each run once on ``test`` as the service
    runs it: accuracy, per class, confusion, ECE/NLL and the accuracy/coverage table, with
    confusion, reliability and coverage PNGs and ``report.json`` under ``out_dir``."""
    directory, out_dir = Path(directory), Path(out_dir)
    meta = md.read(directory)
    scores = score_version(directory, test, meta)
    title = f"{meta.name} v{meta.version}"
    out_dir.mkdir(parents=True, exist_ok=True)
    reports = {}
    for fmt, measured in scores.items():
        reports[fmt] = measured.report()
        plot_confusion(reports[fmt], test.class_names, out_dir / f"confusion_{fmt}.png", f"{title} {fmt}")
        if measured.probabilities is not None:     # columns in the data's class order
            probs = measured.probabilities
            reports[fmt]["coverage"] = coverage_table(probs, test.y)
            plot_coverage(probs, probs.argmax(1) == test.y, reports[fmt]["coverage"],
                          out_dir / f"coverage_{fmt}.png", f"{title} {fmt}")
    plot_reliability(scores, test, out_dir, title)
    (out_dir / "report.json").write_text(json.dumps(reports, indent=2))
    return reports


def evaluate_keras(model, test: Dataset, out_dir: Path, title: str) -> dict:
    """The same report for a Keras model (a training checkpoint)."""
    report = score(test.y, predict_probabilities(model, test).argmax(1), test.class_names).report()
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    plot_confusion(report, test.class_names, Path(out_dir) / "confusion_keras.png", title)
    (Path(out_dir) / "report_keras.json").write_text(json.dumps(report, indent=2))
    return report


# The thresholds of the accuracy / coverage table: the service's ``min_confidence``
# withholds an answer whose top probability is below it (docs/service.md).
COVERAGE_THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def coverage_table(probabilities: np.ndarray, y_true: np.ndarray,
                   thresholds=COVERAGE_THRESHOLDS, predicted: np.ndarray = None) -> list:
    """Per threshold, the share of images answered (top probability >= threshold, the
    service's rule) and the accuracy on those; accuracy is None when none is answered.
    ``predicted`` (class indices in ``y_true``'s terms) defaults to the argmax."""
    probabilities = np.asarray(probabilities)
    top = probabilities.max(axis=1)
    predicted = probabilities.argmax(axis=1) if predicted is None else np.asarray(predicted)
    correct = predicted == np.asarray(y_true)
    rows = []
    for threshold in thresholds:
        answered = top >= threshold
        n = int(answered.sum())
        rows.append({"threshold": float(threshold), "answered": n, "share_answered": n / len(top),
                     "accuracy_answered": float(correct[answered].mean()) if n else None})
    return rows


def plot_coverage(probabilities: np.ndarray, correct: np.ndarray, table: list, path: Path,
                  title: str) -> None:
    """Accuracy on the answered images against the share answered, every threshold swept
    (the curve) and the table's thresholds marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    # Sorting by confidence, the k most confident images are what some threshold answers.
    order = np.argsort(-probabilities.max(axis=1), kind="stable")
    hits = np.cumsum(np.asarray(correct)[order])
    k = np.arange(1, len(order) + 1)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(k / len(order), hits / k, lw=1.5)
    for row in table:
        if row["accuracy_answered"] is not None:
            ax.plot(row["share_answered"], row["accuracy_answered"], "o", color="C1", ms=4)
            ax.annotate(f"{row['threshold']:g}", (row["share_answered"], row["accuracy_answered"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("share answered")
    ax.set_ylabel("accuracy on the answered images")
    ax.set_xlim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(f"{title}: accuracy / coverage (points: min_confidence)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
