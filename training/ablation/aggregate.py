"""From run records to tables, comparisons and verdicts: pure functions, no TensorFlow.

Per (group, variant): the number of seeds, mean, sample standard deviation (ddof=1),
standard error, mean optimizer steps and wall seconds. A variant is compared with a
baseline by a t-test on its metric:

- paired by seed when the two share at least two seeds (a seed fixes the training
  subset, the data order and the initial weights, so the per-seed difference removes
  that shared noise): a one-sample t-test on the differences of the shared seeds,
  n - 1 degrees of freedom; a study's ``paired_on`` names record fields that must
  match too (the transfer study's source backbone);
- otherwise Welch's unequal-variance t-test, Welch-Satterthwaite degrees of freedom;
- "exact" when neither side varies over seeds (a file size, a model evaluated as is):
  the difference is measured, not estimated.

The 95% confidence interval of the difference comes from the same t distribution.
A claim of kind ``better`` is supported when the two-sided p < 0.05 and the
difference lies in the claimed direction, contradicted when p < 0.05 the other way;
a claim of kind ``equivalent`` ("keeps accuracy") is tested by two one-sided tests
(TOST) against ±``margin``: supported when both one-sided p < 0.05 (the larger is
reported), contradicted when the whole 95% interval lies outside the margin.
Everything else is "not shown". A verdict that is not shown, or an effect within
``CLOSE_SE`` standard errors of the line that decides it, needs at least
``ENOUGH_SEEDS`` seeds before it is read.

A claim on wall time (``WALL_TIME``) reads the runs of one machine only: seconds measured
on two CPUs are not samples of one quantity, and a seed run later on another machine
would pair its time with the first machine's. Of the machines in the records (each run's
``machine`` field), the one with the most runs of the scarcer side is read, and the
sentence says which and how many runs of other machines it left out. Accuracy claims
read every machine's runs: a CPU sets how fast a seed trains, and changes what it learns
only by float rounding.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

from scipy import stats

from training.ablation.study import Claim

ALPHA = 0.05           # two-sided level of every test; the intervals are 1 - ALPHA
CLOSE_SE = 3.0         # an effect this near its decision line ...
ENOUGH_SEEDS = 5       # ... needs at least this many seeds per variant
WALL_TIME = ("seconds",)   # metrics that depend on the machine a run ran on
UNRECORDED = "not recorded"   # the machine of a run recorded before runs named theirs


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: Optional[float]   # None with a single seed
    se: Optional[float]


@dataclass(frozen=True)
class Comparison:
    """``variant`` minus ``baseline`` on one metric."""
    diff: float
    low: float                 # the 95% confidence interval of the difference
    high: float
    se: float                  # its standard error (0 for an exact difference)
    df: Optional[float]        # degrees of freedom of the t distribution; None when exact
    p: float                   # two-sided p of "no difference"
    test: str                  # "paired t", "Welch t" or "exact"
    n_variant: int
    n_baseline: int

    @property
    def n(self) -> int:
        """The runs per side the test rests on: the pairs, or the smaller side."""
        return min(self.n_variant, self.n_baseline)

    def sample(self) -> str:
        """How many runs it rests on: "n=5 pairs" or "n=3+3"."""
        if self.test == "paired t":
            return f"n={self.n_variant} pairs"
        return f"n={self.n_variant}+{self.n_baseline}"


@dataclass(frozen=True)
class Row:
    group: str
    variant: str
    metric: Summary
    steps: float
    seconds: float
    baseline: str
    comparison: Optional[Comparison]   # None for the baseline itself, or with too few seeds


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    word: str                          # supported, contradicted, not shown, not measured
    comparison: Optional[Comparison]
    p: Optional[float]                 # what the word rests on: two-sided p, or the larger TOST p
    ours: Optional[Summary]
    theirs: Optional[Summary]
    more_seeds: int                    # seeds to add (to each variant) before this verdict can be read
    seconds_per_seed: float            # the two variants' mean wall seconds, for one more seed of each
    machine: Optional[str] = None      # a wall-time claim: the one machine whose runs it read ...
    left_out: int = 0                  # ... and the runs of other machines it did not


def summarize(values: list) -> Summary:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return Summary(n, mean, None, None)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return Summary(n, mean, std, std / math.sqrt(n))


def by_seed(records: list, variant: str, group: str, metric: str, paired_on: tuple = ()) -> dict:
    """seed -> the metric of that (group, variant)'s run; with ``paired_on``, (seed, *those
    fields) -> the metric, so only runs that agree on them pair. Runs recorded before the
    metric was measured are left out."""
    return {(r["seed"], *(r.get(f) for f in paired_on)) if paired_on else r["seed"]: r[metric]
            for r in records if r["variant"] == variant and r["group"] == group and metric in r}


def _from_t(diff: float, se: float, df: float, test: str, n_variant: int, n_baseline: int) -> Comparison:
    half = stats.t.ppf(1 - ALPHA / 2, df) * se
    p = float(2 * stats.t.sf(abs(diff) / se, df))
    return Comparison(diff, diff - half, diff + half, se, df, p, test, n_variant, n_baseline)


def compare(ours: dict, theirs: dict) -> Optional[Comparison]:
    """``ours`` minus ``theirs`` (each seed -> value), paired on the seeds they share when
    there are at least two; None without a spread to judge by (a side with one run)."""
    a, b = list(ours.values()), list(theirs.values())
    if not a or not b:
        return None
    sa, sb = summarize(a), summarize(b)
    diff = sa.mean - sb.mean
    if sa.std == 0 and sb.std == 0:
        return Comparison(diff, diff, diff, 0.0, None, 0.0 if diff else 1.0, "exact", sa.n, sb.n)
    shared = [s for s in ours if s in theirs]
    if len(shared) >= 2:
        d = summarize([ours[s] - theirs[s] for s in shared])
        if d.se == 0:        # the same shift on every seed
            return Comparison(d.mean, d.mean, d.mean, 0.0, None, 0.0 if d.mean else 1.0, "exact", d.n, d.n)
        return _from_t(d.mean, d.se, d.n - 1, "paired t", d.n, d.n)
    if sa.n < 2 or sb.n < 2:
        return None
    va, vb = sa.se ** 2, sb.se ** 2
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (sa.n - 1) + vb ** 2 / (sb.n - 1))   # Welch-Satterthwaite
    return _from_t(diff, se, df, "Welch t", sa.n, sb.n)


def equivalence_p(c: Comparison, margin: float) -> float:
    """Two one-sided tests: the larger p of "diff <= -margin" and "diff >= +margin"."""
    if c.df is None:
        return 0.0 if abs(c.diff) < margin else 1.0
    below = stats.t.sf((c.diff + margin) / c.se, c.df)    # H0: diff <= -margin
    above = stats.t.cdf((c.diff - margin) / c.se, c.df)   # H0: diff >= +margin
    return float(max(below, above))


def _cells(records: list, order: Optional[list]) -> dict:
    """(group, variant) -> its records, in ``order`` (pairs) or else the records' own order."""
    cells: dict = {key: [] for key in order or []}
    for r in records:
        cells.setdefault((r["group"], r["variant"]), []).append(r)
    return {key: runs for key, runs in cells.items() if runs}


def table(records: list, metric: str = "test_accuracy", order: Optional[list] = None,
          paired_on: tuple = ()) -> list:
    """One Row per (group, variant) that measured ``metric``; the first variant of each group is
    its baseline."""
    cells = _cells([r for r in records if metric in r], order)
    baselines: dict = {}
    for group, variant in cells:
        baselines.setdefault(group, variant)
    rows = []
    for (group, variant), runs in cells.items():
        base = baselines[group]
        comparison = None if variant == base else compare(by_seed(records, variant, group, metric, paired_on),
                                                          by_seed(records, base, group, metric, paired_on))
        rows.append(Row(group, variant, summarize([r[metric] for r in runs]),
                        sum(r["steps"] for r in runs) / len(runs), sum(r["seconds"] for r in runs) / len(runs),
                        base, comparison))
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


def show_effect(c: Comparison, metric: str) -> str:
    """"+4.8 points [+1.2, +8.4]": the difference and its 95% interval."""
    if c.test == "exact":
        return f"{show(c.diff, metric, signed=True)} (exact)"
    number = (lambda v: f"{v * 100:+.1f}") if in_points(metric) else (lambda v: show(v, metric, signed=True))
    return f"{show(c.diff, metric, signed=True)} [{number(c.low)}, {number(c.high)}]"


def show_p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _distance(claim: Claim, c: Comparison) -> float:
    """How many standard errors the difference lies from the line that decides the verdict:
    0 for ``better``, the nearer edge of the margin for ``equivalent``."""
    if c.se == 0:
        return math.inf
    if claim.kind == "equivalent":
        return abs(abs(c.diff) - claim.margin) / c.se
    return abs(c.diff) / c.se


def one_machine(claim: Claim, records: list) -> tuple:
    """(machine, its records) for a wall-time claim: the machine with the most runs on the
    claim's scarcer side (a tie: the machine recorded last). (None, records) for any other claim."""
    if claim.metric not in WALL_TIME and claim.against not in WALL_TIME:
        return None, records

    def runs(machine: str, variant: str, metric: str) -> int:
        return sum(1 for r in records if r.get("machine", UNRECORDED) == machine and r["variant"] == variant
                   and r["group"] == claim.group and metric in r)

    machines = list(dict.fromkeys(reversed([r.get("machine", UNRECORDED) for r in records])))   # last first
    if not machines:
        return None, records
    best = max(machines, key=lambda m: min(runs(m, claim.variant, claim.metric),
                                           runs(m, claim.baseline, claim.against)))   # max keeps the first of a tie
    return best, [r for r in records if r.get("machine", UNRECORDED) == best]


def verdict(claim: Claim, records: list, paired_on: tuple = ()) -> Verdict:
    machine, kept = one_machine(claim, records)
    v = _verdict(claim, kept, paired_on)
    if machine is None:
        return v
    left_out = sum(1 for r in records if r.get("machine", UNRECORDED) != machine and r["group"] == claim.group
                   and r["variant"] in (claim.variant, claim.baseline))
    return dataclasses.replace(v, machine=machine, left_out=left_out)


def _verdict(claim: Claim, records: list, paired_on: tuple) -> Verdict:
    ours_by_seed = by_seed(records, claim.variant, claim.group, claim.metric, paired_on)
    theirs_by_seed = by_seed(records, claim.baseline, claim.group, claim.against, paired_on)
    if claim.baseline_metric:      # two readings of the same runs: only the runs read both ways
        theirs_by_seed = {seed: value for seed, value in theirs_by_seed.items() if seed in ours_by_seed}
    ours = summarize(list(ours_by_seed.values())) if ours_by_seed else None
    theirs = summarize(list(theirs_by_seed.values())) if theirs_by_seed else None
    seconds = sum(sum(r["seconds"] for r in runs) / len(runs) for runs in
                  ([r for r in records if r["variant"] == v and r["group"] == claim.group]
                   for v in dict.fromkeys((claim.variant, claim.baseline))) if runs)   # one run: once
    if ours is None or theirs is None:
        return Verdict(claim, "not measured", None, None, ours, theirs, 0, seconds)
    c = compare(ours_by_seed, theirs_by_seed)
    fewest = min(ours.n, theirs.n)
    if c is None:
        return Verdict(claim, "not shown", None, None, ours, theirs, max(ENOUGH_SEEDS - fewest, 1), seconds)
    if claim.kind == "equivalent":
        p = equivalence_p(c, claim.margin)
        outside = c.low > claim.margin or c.high < -claim.margin
        word = "supported" if p < ALPHA else "contradicted" if outside else "not shown"
    else:
        p = c.p
        towards = c.diff if claim.higher_is_better else -c.diff
        word = "not shown" if p >= ALPHA else "supported" if towards > 0 else "contradicted"
    # undecided, or decided by a hair: read it again at ENOUGH_SEEDS seeds
    more = max(ENOUGH_SEEDS - c.n, 0) if word == "not shown" or _distance(claim, c) < CLOSE_SE else 0
    return Verdict(claim, word, c, p, ours, theirs, more, seconds)


def test_name(v: Verdict) -> str:
    """"paired t, n=5 pairs", "TOST on Welch t, margin ±0.5 points, n=3+3"."""
    c = v.comparison
    if c is None:
        return "no test: a side has one run"
    if c.test == "exact":
        return f"exact: no spread over seeds, n={c.n_variant}+{c.n_baseline}"
    name = f"{c.test}, {c.sample()}, df={c.df:.1f}" if c.test == "Welch t" else f"{c.test}, {c.sample()}"
    if v.claim.kind == "equivalent":
        return f"TOST on {name}, margin ±{show(v.claim.margin, v.claim.metric).rstrip('%')}"
    return name


def sides(v: Verdict) -> str:
    """"dropout 85.1% vs baseline 84.2%", or with two metrics of the same runs
    "dropout mc_test_accuracy 85.1% vs dropout test_accuracy 85.0%"."""
    claim = v.claim
    if claim.against == claim.metric:
        return (f"{claim.variant} {show(v.ours.mean, claim.metric)} vs {claim.baseline} "
                f"{show(v.theirs.mean, claim.metric)}")
    return (f"{claim.variant} {claim.metric} {show(v.ours.mean, claim.metric)} vs {claim.baseline} "
            f"{claim.against} {show(v.theirs.mean, claim.against)}")


def sentence(v: Verdict) -> str:
    """The claim's verdict in one line, for the study report."""
    claim = v.claim
    if v.word == "not measured":
        missing = [name for name, s in ((claim.variant, v.ours), (claim.baseline, v.theirs)) if s is None]
        return f"{claim.text}: not measured yet (no runs of {' and '.join(missing)}){machine_clause(v)}."
    means = f"{sides(v)}, {claim.metric}" if claim.against == claim.metric else sides(v)
    if v.comparison is None:
        return f"{claim.text}: not shown (no spread to judge it by: {means}; {test_name(v)}){machine_clause(v)}."
    line = (f"{claim.text}: {v.word} ({show_effect(v.comparison, claim.metric)}, p {show_p(v.p)}; "
            f"{test_name(v)}; {means})")
    if v.more_seeds:
        line += f"; needs {v.more_seeds} more seed{'s' if v.more_seeds > 1 else ''}"
    return line + machine_clause(v) + "."


def machine_clause(v: Verdict) -> str:
    """"; runs on <machine> only, 2 runs on other machines left out" where a wall-time claim
    had to leave runs out; nothing otherwise."""
    if not v.left_out:
        return ""
    return f"; runs on {v.machine} only, {v.left_out} run{'s' if v.left_out > 1 else ''} on other machines left out"
