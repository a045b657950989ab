"""Aggregation and verdicts on synthetic run records, against numbers computed by hand."""
import math

import pytest

from training.ablation.aggregate import summarize, table, verdict
from training.ablation.study import Claim


def records(variant, values, group="", metric="test_accuracy", steps=100, seconds=10.0):
    return [{"variant": variant, "group": group, "seed": seed, metric: value, "steps": steps,
             "seconds": seconds + seed} for seed, value in enumerate(values, 1)]


BASE = records("base", [0.80, 0.82, 0.84])      # mean 0.82, std 0.02, SE 0.02/sqrt(3)
BETTER = records("better", [0.86, 0.87, 0.88])  # mean 0.87, std 0.01, SE 0.01/sqrt(3)
CLOSE = records("close", [0.81, 0.83, 0.85])    # mean 0.83, std 0.02


def test_summary_is_mean_sample_std_and_standard_error():
    s = summarize([0.80, 0.82, 0.84])
    assert s.n == 3 and s.mean == pytest.approx(0.82)
    assert s.std == pytest.approx(0.02)                   # ddof=1: sqrt((0.0004 + 0 + 0.0004) / 2)
    assert s.se == pytest.approx(0.02 / math.sqrt(3))
    single = summarize([0.5])
    assert (single.n, single.mean, single.std, single.se) == (1, 0.5, None, None)


def test_table_rows_differences_and_costs():
    rows = table(BASE + BETTER + records("other", [0.5, 0.6], group="g2", steps=40))
    assert [(r.group, r.variant, r.baseline) for r in rows] == [("", "base", "base"), ("", "better", "base"),
                                                                 ("g2", "other", "other")]
    base, better, other = rows
    assert base.diff is None and other.diff is None
    assert better.diff == pytest.approx(0.05)
    assert better.diff_se == pytest.approx(math.sqrt(0.02 ** 2 / 3 + 0.01 ** 2 / 3))   # 0.01291
    assert better.steps == 100 and better.seconds == pytest.approx(12.0)
    assert other.steps == 40 and other.metric.mean == pytest.approx(0.55)


def test_table_follows_the_given_order():
    rows = table(BETTER + BASE, order=[("", "base"), ("", "better"), ("", "never-ran")])
    assert [r.variant for r in rows] == ["base", "better"]
    assert rows[1].diff == pytest.approx(0.05)


def test_supported_when_two_standard_errors_in_the_claimed_direction():
    line = verdict(Claim("Better beats base", "better", "base"), BASE + BETTER)
    # 0.05 / 0.012910 = 3.87 SE
    assert line.startswith("Better beats base: supported at this budget (+5.0 points, 3.9 SE;")
    assert "better 87.0% vs base 82.0%" in line


def test_contradicted_when_two_standard_errors_the_other_way():
    line = verdict(Claim("Base beats better", "base", "better"), BASE + BETTER)
    assert line.startswith("Base beats better: contradicted at this budget (-5.0 points, 3.9 SE;")


def test_not_shown_within_two_standard_errors():
    line = verdict(Claim("Close beats base", "close", "base"), BASE + CLOSE)
    # 0.01 / sqrt(2 * 0.02^2 / 3) = 0.61 SE
    assert line.startswith("Close beats base: not shown at this budget (+1.0 points, 0.6 SE;")


def test_lower_is_better_claims_and_groups():
    gaps = records("base", [0.10, 0.12, 0.14], group="1000", metric="gap") + \
        records("dropout", [0.02, 0.03, 0.04], group="1000", metric="gap")
    claim = Claim("Dropout shrinks the gap", "dropout", "base", group="1000", metric="gap", higher_is_better=False)
    assert verdict(claim, gaps).startswith("Dropout shrinks the gap: supported at this budget (-9.0 points, 7.0 SE;")
    assert "not measured yet" in verdict(Claim("x", "dropout", "base", group="5000", metric="gap"), gaps)


def test_one_seed_or_a_missing_variant_is_never_a_verdict():
    one = records("base", [0.8]) + records("better", [0.9])
    assert "no spread to judge it by" in verdict(Claim("Better beats base", "better", "base"), one)
    assert verdict(Claim("Missing helps", "missing", "base"), BASE) == \
        "Missing helps: not measured yet (no runs of missing)."


def test_raw_units_for_metrics_that_are_not_accuracies():
    sizes = records("float", [1000.0, 1010.0, 990.0], metric="gzip_bytes") + \
        records("int8", [300.0, 310.0, 290.0], metric="gzip_bytes")
    line = verdict(Claim("int8 is smaller", "int8", "float", metric="gzip_bytes", higher_is_better=False), sizes)
    assert line.startswith("int8 is smaller: supported at this budget (-700, 85.7 SE; int8 300 vs float 1,000")
