"""Champion / challenger: the decision a retrain job reports, made from the publish
policies' verdicts (``training.publish.policies``) on the candidate's and the served
version's scores, measured on the same held-out images through their exported files.

Pure Python: the report goes to stdout and, when the candidate is published, into
its metadata (``retrain`` block); ``exit_code`` is what ``python -m training retrain``
exits with.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Optional

from training.publish.policies import EXIT_CHECK, EXIT_PUBLISHED, EXIT_WORSE


@dataclass
class Decision:
    """The outcome of one retrain job, as reported and recorded in the new version's metadata."""

    model: str
    metric: str
    tolerance: float
    start: dict                              # {"from": "version", "version": N} or {"from": "scratch"}
    candidate: dict = field(default_factory=dict)       # format -> Score
    current: Optional[dict] = None           # format -> Score; None when nothing was published before
    current_version: Optional[int] = None
    publish_check: dict = field(default_factory=dict)   # the publish check's record (training.publish.gate)
    comparisons: list = field(default_factory=list)     # one per format both versions have
    data: dict = field(default_factory=dict)             # split sizes and fingerprints
    exit_code: int = EXIT_PUBLISHED
    decision: str = "publish"
    published_version: Optional[int] = None

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["candidate"] = {fmt: s.summary() for fmt, s in self.candidate.items()}
        out["current"] = {fmt: s.summary() for fmt, s in self.current.items()} if self.current else None
        return out


def decide(decision: Decision, verdicts: list) -> Decision:
    """Fill in the check, the comparisons, the verdict and the exit code from the policies'
    verdicts. The publish check comes first: a model that has not learned is refused even
    when nothing is served yet."""
    by_policy = {v.policy: v for v in verdicts}
    check, served = by_policy.get("publish_check"), by_policy.get(decision.metric)
    calibration = by_policy.get("calibration_check")      # its record is the version's calibration_check block
    decision.publish_check = check.record if check else {}
    decision.comparisons = served.record["comparisons"] if served else []
    if check is not None and not check.passed:
        decision.exit_code, decision.decision = EXIT_CHECK, "refused: publish check"
    elif served is not None and not served.passed:
        decision.exit_code, decision.decision = EXIT_WORSE, "refused: worse than current"
    elif calibration is not None and not calibration.passed:
        decision.exit_code = EXIT_WORSE
        decision.decision = f"refused: calibration worse than current ({calibration.reason})"
    else:
        decision.exit_code, decision.decision = EXIT_PUBLISHED, "publish"
    return decision
