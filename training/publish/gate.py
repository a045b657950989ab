"""The publish check: a model that has not learned is not published.

A held-out accuracy must be clearly above the majority-class rate (what a
model that always answers the largest class scores); "clearly" is a margin of
two binomial standard errors at that rate, and never less than 2 points, so a
small test set cannot pass by luck. A validation accuracy far below training
accuracy is not a refusal but a warning, kept in the log and the metadata.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from training.config import PublishConfig

OVERFIT_GAP = PublishConfig.overfit_gap   # train - validation accuracy above this is reported as overfitting
MIN_MARGIN = PublishConfig.min_margin     # accuracy points above the majority rate, whatever the test size


@dataclass
class GateReport:
    test_accuracy: float
    majority_rate: float
    margin: float
    test_examples: int
    passed: bool
    warnings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def majority_rate(labels: np.ndarray) -> float:
    return float(np.bincount(labels).max() / len(labels)) if len(labels) else 0.0


def required_margin(rate: float, n: int, min_margin: float = MIN_MARGIN) -> float:
    return max(min_margin, 2.0 * math.sqrt(rate * (1.0 - rate) / max(n, 1)))


def check(test_accuracy: float, test_labels: np.ndarray, train_accuracy: float = None,
          val_accuracy: float = None, *, min_margin: float = MIN_MARGIN,
          overfit_gap: float = OVERFIT_GAP) -> GateReport:
    """Measure; never raises. ``refusal`` says why a failed report refuses."""
    rate = majority_rate(test_labels)
    margin = required_margin(rate, len(test_labels), min_margin)
    warnings = []
    if train_accuracy is not None and val_accuracy is not None and train_accuracy - val_accuracy > overfit_gap:
        warnings.append(f"validation accuracy {val_accuracy:.3f} is far below training accuracy "
                        f"{train_accuracy:.3f}: the model overfits; more images, more augmentation "
                        "or transfer learning (python -m training transfer) usually help")
    passed = len(test_labels) > 0 and test_accuracy >= rate + margin
    return GateReport(round(test_accuracy, 4), round(rate, 4), round(margin, 4), len(test_labels), passed, warnings)


def refusal(report: GateReport) -> str:
    """Why a failed report refuses, with what was measured and what to try; "" when it passed."""
    if report.passed:
        return ""
    if report.test_examples == 0:
        return ("no held-out test images, so the model cannot be checked; add images "
                "(10% of each class is held out) or pass --force to publish unchecked")
    return (
        f"not published: held-out accuracy {report.test_accuracy:.3f} on {report.test_examples} images is not "
        f"clearly above the majority-class rate {report.majority_rate:.3f} (needs +{report.margin:.3f}). "
        "Try more images per class, the folder preset (--preset folder), or transfer learning "
        "(python -m training transfer); --force publishes anyway")
