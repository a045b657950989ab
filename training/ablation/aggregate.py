"""From run records to a table and verdicts: pure functions, no TensorFlow.

Per (group, variant): the number of seeds, mean, sample standard deviation
(ddof=1), standard error (std / sqrt(n)), mean optimizer steps and mean wall
seconds, and the difference from the group's baseline (its first variant) with
the standard error of that difference, sqrt(se_a^2 + se_b^2). Each claim gets one
sentence: supported when the difference lies in the claimed direction by at
least ``SURE_SE`` standard errors, contradicted when it lies that far the other
way, otherwise not shown at this budget.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from training.ablation.study import Claim

SURE_SE = 2.0   # about 95% two-sided for normal errors; fewer seeds make it optimistic


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: Optional[float]   # None with a single seed
    se: Optional[float]


@dataclass(frozen=True)
class Row:
    group: str
    variant: str
    metric: Summary
    steps: float
    seconds: float
    baseline: str
    diff: Optional[float]      # variant mean - baseline mean; None for the baseline itself
    diff_se: Optional[float]


def summarize(values: list) -> Summary:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return Summary(n, mean, None, None)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return Summary(n, mean, std, std / math.sqrt(n))


def difference(a: Summary, b: Summary) -> tuple:
    """(a.mean - b.mean, its standard error), the error None when either side has one seed."""
    se = math.sqrt(a.se ** 2 + b.se ** 2) if a.se is not None and b.se is not None else None
    return a.mean - b.mean, se


def _cells(records: list, order: Optional[list]) -> dict:
    """(group, variant) -> its records, in ``order`` (pairs) or else the records' own order."""
    cells: dict = {key: [] for key in order or []}
    for r in records:
        cells.setdefault((r["group"], r["variant"]), []).append(r)
    return {key: runs for key, runs in cells.items() if runs}


def table(records: list, metric: str = "test_accuracy", order: Optional[list] = None) -> list:
    """One Row per (group, variant); the first variant of each group is its baseline."""
    cells = _cells(records, order)
    baselines: dict = {}
    for group, variant in cells:
        baselines.setdefault(group, variant)
    summaries = {key: summarize([r[metric] for r in runs]) for key, runs in cells.items()}
    rows = []
    for (group, variant), runs in cells.items():
        base = baselines[group]
        diff, diff_se = (None, None) if variant == base else difference(summaries[(group, variant)],
                                                                          summaries[(group, base)])
        rows.append(Row(group, variant, summaries[(group, variant)],
                        sum(r["steps"] for r in runs) / len(runs), sum(r["seconds"] for r in runs) / len(runs),
                        base, diff, diff_se))
    return rows


def in_points(metric: str) -> bool:
    """Accuracies (and gaps between them) are fractions, shown as percentage points."""
    return "accuracy" in metric or metric == "gap"


def show(value: float, metric: str, signed: bool = False) -> str:
    if in_points(metric):
        return f"{value * 100:{'+' if signed else ''}.1f}" + (" points" if signed else "%")
    if abs(value) >= 1000:      # byte counts: 167,304 reads better than 1.673e+05
        return f"{value:{'+' if signed else ''},.0f}"
    return f"{value:{'+' if signed else ''}.4g}"


def verdict(claim: Claim, records: list) -> str:
    """The claim's sentence: supported / contradicted / not shown, with the difference and
    how many standard errors it spans."""
    def cell(variant):
        values = [r[claim.metric] for r in records if r["variant"] == variant and r["group"] == claim.group]
        return summarize(values) if values else None
    ours, theirs = cell(claim.variant), cell(claim.baseline)
    missing = [name for name, s in ((claim.variant, ours), (claim.baseline, theirs)) if s is None]
    if missing:
        return f"{claim.text}: not measured yet (no runs of {' and '.join(missing)})."
    diff, se = difference(ours, theirs)
    seeds = f"{ours.n}" if ours.n == theirs.n else f"{min(ours.n, theirs.n)}-{max(ours.n, theirs.n)}"
    means = (f"{claim.variant} {show(ours.mean, claim.metric)} vs {claim.baseline} "
             f"{show(theirs.mean, claim.metric)}, {claim.metric}, {seeds} seeds")
    if not se:
        return (f"{claim.text}: not shown at this budget ({show(diff, claim.metric, True)}; "
                f"no spread to judge it by: {means}).")
    z = diff / se
    towards = z if claim.higher_is_better else -z
    word = "supported" if towards >= SURE_SE else "contradicted" if towards <= -SURE_SE else "not shown"
    return (f"{claim.text}: {word} at this budget ({show(diff, claim.metric, True)}, {abs(z):.1f} SE; "
            f"{means}).")
