"""Scoring: one scorer for every answer sheet, and a published (or staged) version scored
through the runners the service uses.

A ``Score`` holds the confusion matrix; accuracy, per-class precision/recall/F1
and the recalls that the promotion rule compares are all read from it, so the
``evaluate`` report, a version's ``metrics`` block and a retrain's decision can
never disagree about what a model answered.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np

from artifact import metadata as md
from artifact.litert import LiteRTRunner
from artifact.saved_model import SavedModelRunner

from training.data.datasets import Dataset
from training.publish import calibration
from training.quiet import captured_stderr

FORMATS = ("saved_model", "tflite")
SERVED_FORMAT = "tflite"        # what the service answers with by default: its per-class scores are recorded


@dataclass(frozen=True)
class Score:
    """One model's answers on a labelled split, as a confusion matrix (rows: true class)."""

    class_names: tuple
    confusion: tuple                   # K rows of K counts
    other: tuple = ()                  # per true class: answers naming a class the data lacks
    ece: Optional[float] = None        # expected calibration error (15 bins) of the probabilities, when measured
    nll: Optional[float] = None        # their mean negative log-likelihood of the true class
    # the probabilities themselves, in the data's class order (the publish path's calibration
    # block reads them); not part of a score's identity
    probabilities: Optional[np.ndarray] = field(default=None, compare=False, repr=False)

    @property
    def examples(self) -> int:
        return int(np.sum(self.confusion) + np.sum(self.other))

    @property
    def accuracy(self) -> float:
        return round(float(np.trace(np.asarray(self.confusion)) / max(self.examples, 1)), 4)

    def per_class(self) -> dict:
        """Class name -> precision, recall, F1 and support."""
        matrix = np.asarray(self.confusion)
        out = {}
        for i, name in enumerate(self.class_names):
            tp = matrix[i, i]
            precision = tp / max(matrix[:, i].sum(), 1)
            support = matrix[i].sum() + (self.other[i] if self.other else 0)
            recall = tp / max(support, 1)
            f1 = 2 * precision * recall / max(precision + recall, 1e-12)
            out[name] = {"precision": round(float(precision), 4), "recall": round(float(recall), 4),
                         "f1": round(float(f1), 4), "support": int(support)}
        return out

    def recalls(self) -> dict:
        """Class name -> recall (the share of its images answered right), for classes present."""
        return {name: row["recall"] for name, row in self.per_class().items() if row["support"]}

    def report(self) -> dict:
        """The ``evaluate`` report: accuracy, examples, per class, confusion."""
        out = {"accuracy": self.accuracy, "examples": self.examples, "per_class": self.per_class(),
               "confusion": [list(row) for row in self.confusion]}
        return out | ({"ece": self.ece, "nll": self.nll} if self.ece is not None else {})

    def summary(self) -> dict:
        """What a retrain report records per format: accuracy, recalls, examples."""
        out = {"accuracy": self.accuracy, "per_class": self.recalls(), "examples": self.examples}
        return out | ({"ece": self.ece} if self.ece is not None else {})


def score(y_true, y_pred, class_names) -> Score:
    """Score predicted class indices against true ones; a prediction of -1 (a class the
    model does not know, see ``map_labels``) counts as wrong."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    k = len(class_names)
    matrix = np.zeros((k, k), np.int64)
    known = y_pred >= 0
    np.add.at(matrix, (y_true[known], y_pred[known]), 1)
    other = np.bincount(y_true[~known], minlength=k)
    return Score(tuple(class_names), tuple(tuple(int(v) for v in row) for row in matrix),
                 tuple(int(v) for v in other) if other.any() else ())


def map_labels(predicted: np.ndarray, from_labels: list, to_labels: list) -> np.ndarray:
    """Indices in ``from_labels`` -> indices in ``to_labels`` by class name; a class the
    other list lacks becomes -1 (never equal to a true label, so it counts as wrong)."""
    index = {name: i for i, name in enumerate(to_labels)}
    table = np.array([index.get(name, -1) for name in from_labels], np.int64)
    return table[np.asarray(predicted, np.int64)]


def version_runner(directory: Path, fmt: str, meta: Optional[md.Metadata] = None):
    """The runner the service uses for a version's ``fmt`` (saved_model or tflite); ``meta``
    may be the in-memory metadata of a version still being staged."""
    meta = meta or md.read(directory)
    path = meta.format_path(directory, fmt)
    if path is None:
        raise FileNotFoundError(f"{directory} has no {fmt}")
    if fmt == "saved_model":
        return SavedModelRunner.for_format(directory, meta.formats.saved_model)
    with captured_stderr():                 # LiteRT's "Created ... XNNPACK delegate" note
        return LiteRTRunner(path)


def calibrated_score(measured: Score, probs: np.ndarray, labels: list, test: Dataset) -> Score:
    """``measured`` with the ECE and NLL of ``probs`` (columns in ``labels`` order) on ``test``;
    as it was where the version's classes are not the data's (no probability for a true class)."""
    if sorted(labels) != sorted(test.class_names):
        return measured
    probs = np.asarray(probs, np.float64)[:, [list(labels).index(name) for name in test.class_names]]
    return replace(measured, ece=round(calibration.ece(probs, test.y), 4),
                   nll=round(calibration.nll(probs, test.y), 4), probabilities=probs)


def score_version(directory: Path, test: Dataset, meta: Optional[md.Metadata] = None) -> dict:
    """Format -> Score of every exported format the version holds, run as the service runs it;
    the version's labels are matched to the data's classes by name. Each score carries the
    ECE and NLL of the probabilities it answered with (``training.publish.calibration``)."""
    directory = Path(directory)
    meta = meta or md.read(directory)
    scores = {}
    for fmt in FORMATS:
        if meta.format_path(directory, fmt) is not None:
            probs = version_runner(directory, fmt, meta).predict(test.x)
            predicted = probs.argmax(1)
            measured = score(test.y, map_labels(predicted, meta.labels, test.class_names), test.class_names)
            scores[fmt] = calibrated_score(measured, probs, meta.labels, test)
    if not scores:
        raise FileNotFoundError(f"{directory} holds none of the formats {', '.join(FORMATS)}")
    return scores


def metrics_block(scores: dict, sizes: dict) -> dict:
    """A version's ``metrics``: each format's accuracy and sizes, and the served format's
    per-class scores and confusion matrix."""
    served = scores.get(SERVED_FORMAT) or next(iter(scores.values()))
    block = {"test_examples": served.examples}
    for fmt, measured in scores.items():
        block[fmt] = {"accuracy": measured.accuracy, **sizes.get(fmt, {})}
    block["per_class"] = served.per_class()
    block["confusion"] = served.report()["confusion"]
    return block
