"""Publish policies: what a candidate version must satisfy before it is renamed into place.

Every policy has one interface, ``judge(scores, test, history) -> Verdict``, where
``scores`` are the staged version's per-format scores measured through the
service's runners (``training.publish.scoring``). The one publish path
(``training.publish.release.publish_version``) asks each policy in turn and
publishes only when all pass (``--force`` publishes past a failed check, and
says so in the metadata).

- ``PublishCheck``: a model that has not learned is not published (``training.publish.gate``).
- ``NotWorseThanServed``: accuracy may be at most ``tolerance`` below the served version's.
- ``NoClassDrops``: no class's recall may drop by more than ``tolerance``; a model that
  trades one class away for a better average is refused.
- ``CalibrationNotWorse``: the served format's expected calibration error may be at most
  ``tolerance`` above the served version's, so a retrain keeps the confidence users act on.

Served comparisons compare every exported format both versions have, and each must
pass: what the service answers with depends on its backend.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Protocol

from training.config import PublishConfig
from training.data.datasets import Dataset
from training.publish import gate
from training.publish.scoring import SERVED_FORMAT, Score

# Exit codes of the commands that publish (docs/retraining.md).
EXIT_PUBLISHED = 0   # the candidate was published
EXIT_USAGE = 2       # bad arguments, data or config: nothing ran
EXIT_CHECK = 3       # refused by the publish check (not clearly above the majority-class rate)
EXIT_WORSE = 4       # refused: worse than the current version beyond the tolerance
EXIT_BUSY = 5        # another job holds the model's lock, or the served version changed meanwhile


@dataclass(frozen=True)
class Verdict:
    """One policy's judgement of a candidate; ``record`` goes into the version's metadata."""

    policy: str                 # the metadata key the record is stored under
    passed: bool
    reason: str
    record: dict
    exit_code: int              # what a command exits with when this policy refuses


class Policy(Protocol):
    def judge(self, scores: dict, test: Dataset, history: Optional[dict]) -> Verdict: ...


def _best_epoch_accuracies(history: Optional[dict]) -> tuple:
    """(train, validation) accuracy of the epoch whose weights are kept (the best validation)."""
    val = (history or {}).get("val_accuracy")
    if not val:
        return None, None
    best = max(range(len(val)), key=val.__getitem__)
    return history["accuracy"][best], val[best]


@dataclass(frozen=True)
class PublishCheck:
    """Held-out accuracy (the worst exported format's) clearly above the majority-class rate."""

    min_margin: float = gate.MIN_MARGIN
    overfit_gap: float = gate.OVERFIT_GAP

    @classmethod
    def from_config(cls, publish: PublishConfig) -> "PublishCheck":
        return cls(publish.min_margin, publish.overfit_gap)

    def judge(self, scores: dict, test: Dataset, history: Optional[dict]) -> Verdict:
        accuracy = min(s.accuracy for s in scores.values())
        report = gate.check(accuracy, test.y, *_best_epoch_accuracies(history),
                            min_margin=self.min_margin, overfit_gap=self.overfit_gap)
        return Verdict("publish_check", report.passed, gate.refusal(report) or "above the majority-class rate",
                       report.to_dict(), EXIT_CHECK)


@dataclass
class Comparison:
    """Candidate vs served for one format."""

    format: str
    accuracy_delta: float
    per_class_delta: dict
    passed: bool
    reason: str


def compare(fmt: str, candidate: Score, served: Score, metric: str, tolerance: float) -> Comparison:
    if metric not in METRICS:
        raise ValueError(f"unknown metric '{metric}' ({', '.join(METRICS)})")
    delta = round(candidate.accuracy - served.accuracy, 4)
    mine = candidate.recalls()
    per_class = {name: round(mine.get(name, 0.0) - recall, 4) for name, recall in served.recalls().items()}
    if metric == "accuracy":
        passed = delta >= -tolerance
        reason = (f"{fmt} accuracy {candidate.accuracy:.4f} vs current {served.accuracy:.4f} "
                  f"({delta:+.4f}, tolerance {tolerance})")
    else:
        worst = min(per_class, key=per_class.get) if per_class else None
        passed = worst is None or per_class[worst] >= -tolerance
        reason = (f"{fmt} worst class change {worst} {per_class.get(worst, 0.0):+.4f} "
                  f"(tolerance {tolerance} per class)")
    return Comparison(fmt, delta, per_class, passed, reason)


@dataclass(frozen=True)
class _AgainstServed:
    served: dict                # format -> Score of the served version, on the same test images
    tolerance: float
    metric = ""

    def judge(self, scores: dict, test: Dataset, history: Optional[dict]) -> Verdict:
        comparisons = [compare(fmt, scores[fmt], self.served[fmt], self.metric, self.tolerance)
                       for fmt in scores if fmt in self.served]
        failed = [c.reason for c in comparisons if not c.passed]
        return Verdict(self.metric, not failed, "; ".join(failed) or "not worse than the served version",
                       {"comparisons": [asdict(c) for c in comparisons]}, EXIT_WORSE)


class NotWorseThanServed(_AgainstServed):
    metric = "accuracy"


class NoClassDrops(_AgainstServed):
    metric = "class_floor"


METRICS = ("accuracy", "class_floor")


def against_served(metric: str, served: dict, tolerance: float) -> _AgainstServed:
    """The served-version policy ``--metric`` names."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric '{metric}' ({', '.join(METRICS)})")
    return (NotWorseThanServed if metric == "accuracy" else NoClassDrops)(served, tolerance)


@dataclass(frozen=True)
class CalibrationNotWorse:
    """The candidate's ECE (the served format's, on the same test images) at most ``tolerance``
    above the served version's. The tolerance is about ECE's sampling noise on a few thousand
    images (docs/retraining.md): a smaller one would refuse candidates for chance alone."""

    served_ece: float
    tolerance: float

    def judge(self, scores: dict, test: Dataset, history: Optional[dict]) -> Verdict:
        measured = scores.get(SERVED_FORMAT) or next(iter(scores.values()))
        record = {"served_ece": self.served_ece, "candidate_ece": measured.ece, "tolerance": self.tolerance}
        if measured.ece is None:     # the candidate's classes are not the data's: nothing to compare
            return Verdict("calibration_check", True, "no ECE measured for the candidate", record, EXIT_WORSE)
        delta = round(measured.ece - self.served_ece, 4)
        passed = delta <= self.tolerance
        reason = (f"ECE {measured.ece:.4f} vs current {self.served_ece:.4f} ({delta:+.4f}, "
                  f"tolerance {self.tolerance})")
        return Verdict("calibration_check", passed, reason if not passed else "calibration not worse than served",
                       record | {"delta": delta, "passed": passed}, EXIT_WORSE)


class PublishRefused(RuntimeError):
    """A policy refused the candidate; nothing was published. ``verdicts`` holds every
    policy's judgement and ``scores`` the candidate's scores."""

    def __init__(self, verdicts: list, scores: dict):
        failed = [v for v in verdicts if not v.passed]
        super().__init__("; ".join(v.reason for v in failed))
        self.verdicts, self.scores = verdicts, scores
        self.exit_code = failed[0].exit_code if failed else EXIT_PUBLISHED
