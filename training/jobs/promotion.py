"""Champion / challenger: publish a retrained candidate only when it is not worse
than the version being served, measured on the same held-out images.

Pure Python and numpy: the retrain job measures both models through their
exported files and hands the predictions here; this module scores them,
decides and writes the report (stdout and the new version's metadata).

Metrics (``--metric``):

- ``accuracy``: the candidate's accuracy may be at most ``tolerance`` below the
  current version's;
- ``class_floor``: no class's recall (the share of its images answered right)
  may drop by more than ``tolerance``; a model that trades one class away
  for a better average is refused.

Every exported format both versions have is compared, and each must pass:
what the service answers with depends on its backend.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

# Exit codes of ``python -m training retrain`` (docs/retraining.md).
EXIT_PUBLISHED = 0   # the candidate was published
EXIT_USAGE = 2       # bad arguments, data or config: nothing ran
EXIT_CHECK = 3       # refused by the publish check (not clearly above the majority-class rate)
EXIT_WORSE = 4       # refused: worse than the current version beyond the tolerance
EXIT_BUSY = 5        # another job holds the model's lock, or the served version changed meanwhile

METRICS = ("accuracy", "class_floor")


@dataclass
class Score:
    """One model format's answers on the held-out split."""

    accuracy: float
    per_class: dict          # class name -> recall
    examples: int


def map_labels(predicted: np.ndarray, from_labels: list, to_labels: list) -> np.ndarray:
    """Indices in ``from_labels`` -> indices in ``to_labels`` by class name; a class the
    other list lacks becomes -1 (never equal to a true label, so it counts as wrong)."""
    index = {name: i for i, name in enumerate(to_labels)}
    table = np.array([index.get(name, -1) for name in from_labels], np.int64)
    return table[np.asarray(predicted, np.int64)]


def score(y_true: np.ndarray, y_pred: np.ndarray, class_names: list) -> Score:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    per_class = {}
    for k, name in enumerate(class_names):
        members = y_true == k
        if members.any():
            per_class[name] = round(float(np.mean(y_pred[members] == k)), 4)
    accuracy = float(np.mean(y_true == y_pred)) if len(y_true) else 0.0
    return Score(round(accuracy, 4), per_class, int(len(y_true)))


@dataclass
class Comparison:
    """Candidate vs current for one format."""

    format: str
    accuracy_delta: float
    per_class_delta: dict
    passed: bool
    reason: str


def compare(fmt: str, candidate: Score, current: Score, metric: str, tolerance: float) -> Comparison:
    if metric not in METRICS:
        raise ValueError(f"unknown metric '{metric}' ({', '.join(METRICS)})")
    delta = round(candidate.accuracy - current.accuracy, 4)
    per_class = {name: round(candidate.per_class.get(name, 0.0) - recall, 4)
                 for name, recall in current.per_class.items()}
    if metric == "accuracy":
        passed = delta >= -tolerance
        reason = (f"{fmt} accuracy {candidate.accuracy:.4f} vs current {current.accuracy:.4f} "
                  f"({delta:+.4f}, tolerance {tolerance})")
    else:
        worst = min(per_class, key=per_class.get) if per_class else None
        passed = worst is None or per_class[worst] >= -tolerance
        reason = (f"{fmt} worst class change {worst} {per_class.get(worst, 0.0):+.4f} "
                  f"(tolerance {tolerance} per class)")
    return Comparison(fmt, delta, per_class, passed, reason)


@dataclass
class Decision:
    """The outcome of one retrain job, as reported and recorded in the new version's metadata."""

    model: str
    metric: str
    tolerance: float
    start: dict                              # {"from": "version", "version": N} or {"from": "scratch"}
    candidate: dict                          # format -> Score
    current: Optional[dict] = None           # format -> Score; None when nothing was published before
    current_version: Optional[int] = None
    publish_check: dict = field(default_factory=dict)   # training.publish.gate report
    comparisons: list = field(default_factory=list)
    data: dict = field(default_factory=dict)             # split sizes and fingerprints
    exit_code: int = EXIT_PUBLISHED
    decision: str = "publish"
    published_version: Optional[int] = None

    def to_dict(self) -> dict:
        return asdict(self)   # recurses into the Score and Comparison entries


def decide(decision: Decision, check_passed: bool) -> Decision:
    """Fill in the comparisons, the verdict and the exit code.

    The publish check comes first: a model that has not learned is refused
    even when nothing is served yet.
    """
    if decision.current:
        decision.comparisons = [compare(fmt, decision.candidate[fmt], decision.current[fmt],
                                        decision.metric, decision.tolerance)
                                for fmt in decision.candidate if fmt in decision.current]
    if not check_passed:
        decision.exit_code, decision.decision = EXIT_CHECK, "refused: publish check"
    elif not all(c.passed for c in decision.comparisons):
        decision.exit_code, decision.decision = EXIT_WORSE, "refused: worse than current"
    else:
        decision.exit_code, decision.decision = EXIT_PUBLISHED, "publish"
    return decision
