"""Aggregation, comparisons and verdicts on synthetic run records, against scipy's own
t-tests and numbers computed by hand."""
import math

import pytest
from scipy import stats

from training.ablation.aggregate import compare, equivalence_p, sentence, summarize, table, verdict
from training.ablation.study import Claim


def records(variant, values, group="", metric="test_accuracy", steps=100, seconds=10.0, first_seed=1):
    return [{"variant": variant, "group": group, "seed": seed, metric: value, "steps": steps,
             "seconds": seconds + seed} for seed, value in enumerate(values, first_seed)]


def values(rs, metric="test_accuracy"):
    return {r["seed"]: r[metric] for r in rs}


BASE = records("base", [0.80, 0.82, 0.84])      # mean 0.82, std 0.02
BETTER = records("better", [0.86, 0.87, 0.88])  # mean 0.87, std 0.01; per-seed differences 0.06, 0.05, 0.04
CLOSE = records("close", [0.81, 0.83, 0.85])    # mean 0.83, std 0.02: +0.01 on every seed
# other seeds than BASE's: nothing to pair, so Welch
ELSEWHERE = records("elsewhere", [0.86, 0.87, 0.88], first_seed=4)


def test_summary_is_mean_sample_std_and_standard_error():
    s = summarize([0.80, 0.82, 0.84])
    assert s.n == 3 and s.mean == pytest.approx(0.82)
    assert s.std == pytest.approx(0.02)                   # ddof=1: sqrt((0.0004 + 0 + 0.0004) / 2)
    assert s.se == pytest.approx(0.02 / math.sqrt(3))
    single = summarize([0.5])
    assert (single.n, single.mean, single.std, single.se) == (1, 0.5, None, None)


def test_runs_that_share_seeds_are_compared_by_a_paired_t_test():
    c = compare(values(BETTER), values(BASE))
    assert c.test == "paired t" and c.df == 2 and c.sample() == "n=3 pairs"
    assert c.diff == pytest.approx(0.05) and c.se == pytest.approx(0.01 / math.sqrt(3))
    reference = stats.ttest_rel([0.86, 0.87, 0.88], [0.80, 0.82, 0.84])
    assert c.p == pytest.approx(reference.pvalue)          # t = 8.66 on 2 df: p = 0.013
    assert c.p == pytest.approx(0.0131, abs=1e-4)
    low, high = reference.confidence_interval(0.95)
    assert (c.low, c.high) == (pytest.approx(low), pytest.approx(high))
    assert c.high - c.diff == pytest.approx(4.3027 * 0.01 / math.sqrt(3), rel=1e-4)   # t(0.975, 2) * SE


def test_runs_on_different_seeds_are_compared_by_welch():
    c = compare(values(ELSEWHERE), values(BASE))
    reference = stats.ttest_ind([0.86, 0.87, 0.88], [0.80, 0.82, 0.84], equal_var=False)
    assert c.test == "Welch t" and c.sample() == "n=3+3"
    assert c.se == pytest.approx(math.sqrt(0.02 ** 2 / 3 + 0.01 ** 2 / 3))
    assert c.df == pytest.approx(reference.df) and c.df == pytest.approx(2.941, abs=1e-3)   # Welch-Satterthwaite
    assert c.p == pytest.approx(reference.pvalue)
    low, high = reference.confidence_interval(0.95)
    assert (c.low, c.high) == (pytest.approx(low), pytest.approx(high))


def test_pairs_are_the_shared_seeds_and_fields_named_by_paired_on():
    more = records("more", [0.86, 0.87, 0.88, 0.80, 0.99])       # seeds 1-5; BASE ran 1-3
    c = compare(values(more), values(BASE))
    assert c.test == "paired t" and c.sample() == "n=3 pairs" and c.diff == pytest.approx(0.05)
    # the same seeds on another source model do not pair: Welch over every run
    ours = [dict(r, source=0.86) for r in BETTER]
    theirs = [dict(r, source=0.85) for r in BASE]
    assert verdict(Claim("x", "better", "base"), ours + theirs).comparison.test == "paired t"
    v = verdict(Claim("x", "better", "base"), ours + theirs, paired_on=("source",))
    assert v.comparison.test == "Welch t"
    mixed = theirs[:1] + [dict(r, source=0.86) for r in BASE[1:]]   # seeds 2 and 3 share the source
    v = verdict(Claim("x", "better", "base"), ours + mixed, paired_on=("source",))
    assert v.comparison.sample() == "n=2 pairs" and v.more_seeds == 3      # 2 pairs: 3 more seeds wanted


def test_a_difference_that_does_not_vary_over_seeds_is_exact():
    sizes = compare({1: 300.0, 2: 300.0}, {1: 1000.0, 2: 1000.0})
    assert (sizes.test, sizes.diff, sizes.low, sizes.high, sizes.p) == ("exact", -700.0, -700.0, -700.0, 0.0)
    assert compare(values(CLOSE), values(BASE)).test == "exact"      # +0.01 on every seed
    assert compare({1: 0.5}, {2: 0.6}) is None                       # one run a side: no spread


def test_supported_only_below_p_005_in_the_claimed_direction():
    v = verdict(Claim("Better beats base", "better", "base"), BASE + BETTER)
    assert v.word == "supported" and v.p == pytest.approx(0.0131, abs=1e-4)
    line = sentence(v)
    assert line.startswith("Better beats base: supported (+5.0 points [+2.5, +7.5], p 0.013; paired t, n=3 pairs;")
    assert "better 87.0% vs base 82.0%" in line
    assert verdict(Claim("Base beats better", "base", "better"), BASE + BETTER).word == "contradicted"


def test_two_standard_errors_are_not_enough():
    """2.6 standard errors on 3 + 3 seeds: p = 0.08 by Welch, so not shown (the old 2-SE rule said supported)."""
    base = records("base", [0.80, 0.82, 0.84])
    ours = records("ours", [0.843, 0.853, 0.863], first_seed=4)
    v = verdict(Claim("Ours beats base", "ours", "base"), base + ours)
    assert v.comparison.diff / v.comparison.se > 2.5
    assert v.word == "not shown" and 0.05 < v.p < 0.1
    assert v.more_seeds == 2 and "needs 2 more seeds" in sentence(v)


def test_equivalence_by_two_one_sided_tests():
    float_model = records("float", [0.934, 0.934, 0.934])
    int8 = records("int8", [0.933, 0.9335, 0.9342])
    keeps = Claim("int8 keeps accuracy", "int8", "float", kind="equivalent", margin=0.005)
    v = verdict(keeps, float_model + int8)
    differences = [-0.001, -0.0005, 0.0002]
    lower = stats.ttest_1samp(differences, -0.005, alternative="greater").pvalue
    upper = stats.ttest_1samp(differences, 0.005, alternative="less").pvalue
    assert v.word == "supported" and v.p == pytest.approx(max(lower, upper)) and v.p < 0.05
    assert "TOST on paired t, n=3 pairs, margin ±0.5" in sentence(v)
    # 1.7 points below with a tight interval: the whole interval lies outside the margin
    pruned = records("pruned", [0.916, 0.917, 0.918])
    v = verdict(Claim("pruning keeps accuracy", "pruned", "float", kind="equivalent"), float_model + pruned)
    assert v.word == "contradicted" and v.comparison.high < -0.005
    # noisy and near zero: neither inside nor outside
    noisy = records("noisy", [0.92, 0.934, 0.95])
    assert verdict(Claim("noisy keeps accuracy", "noisy", "float", kind="equivalent"),
                   float_model + noisy).word == "not shown"
    assert equivalence_p(compare({1: 0.93, 2: 0.93}, {1: 0.931, 2: 0.931}), 0.005) == 0.0    # exact, inside


def test_a_claim_can_compare_two_readings_of_the_same_runs_paired_by_seed():
    # the dropout runs read two ways: one deterministic pass and the Monte Carlo mean
    runs = [{**r, "mc_test_accuracy": r["test_accuracy"] + d}
            for r, d in zip(records("dropout", [0.80, 0.83, 0.81, 0.85]), [0.004, 0.006, 0.005, 0.007])]
    older = records("dropout", [0.70], first_seed=9)           # recorded before the MC reading existed
    claim = Claim("MC beats one pass", "dropout", "dropout", metric="mc_test_accuracy",
                  baseline_metric="test_accuracy")
    v = verdict(claim, runs + older)
    expected = stats.ttest_rel([r["mc_test_accuracy"] for r in runs], [r["test_accuracy"] for r in runs])
    assert v.comparison.test == "paired t" and v.comparison.n_variant == 4 and v.theirs.n == 4
    assert v.word == "supported" and v.p == pytest.approx(expected.pvalue)
    assert "dropout mc_test_accuracy 82.8% vs dropout test_accuracy 82.2%" in sentence(v)
    assert [r.variant for r in table(runs + older, "mc_test_accuracy")] == ["dropout"]
    assert table(runs + older, "mc_test_accuracy")[0].metric.n == 4


def test_a_claim_kind_must_be_known():
    with pytest.raises(ValueError, match="better or equivalent"):
        Claim("x", "a", "b", kind="no worse")


def test_table_rows_differences_and_costs():
    rows = table(BASE + BETTER + records("other", [0.5, 0.6], group="g2", steps=40))
    assert [(r.group, r.variant, r.baseline) for r in rows] == [("", "base", "base"), ("", "better", "base"),
                                                                 ("g2", "other", "other")]
    base, better, other = rows
    assert base.comparison is None and other.comparison is None
    assert better.comparison.diff == pytest.approx(0.05) and better.comparison.test == "paired t"
    assert better.steps == 100 and better.seconds == pytest.approx(12.0)
    assert other.steps == 40 and other.metric.mean == pytest.approx(0.55)


def test_table_follows_the_given_order():
    rows = table(BETTER + BASE, order=[("", "base"), ("", "better"), ("", "never-ran")])
    assert [r.variant for r in rows] == ["base", "better"]
    assert rows[1].comparison.diff == pytest.approx(0.05)


def test_lower_is_better_claims_and_groups():
    gaps = records("base", [0.10, 0.12, 0.14], group="1000", metric="gap") + \
        records("dropout", [0.02, 0.03, 0.05], group="1000", metric="gap")
    claim = Claim("Dropout shrinks the gap", "dropout", "base", group="1000", metric="gap", higher_is_better=False)
    v = verdict(claim, gaps)
    assert v.word == "supported" and v.comparison.diff == pytest.approx(-0.0867, abs=1e-4)
    assert verdict(Claim("x", "dropout", "base", group="5000", metric="gap"), gaps).word == "not measured"


def test_one_seed_or_a_missing_variant_is_never_a_verdict():
    one = records("base", [0.8]) + records("better", [0.9], first_seed=2)
    v = verdict(Claim("Better beats base", "better", "base"), one)
    assert v.word == "not shown" and "no spread to judge it by" in sentence(v) and v.more_seeds == 4
    assert sentence(verdict(Claim("Missing helps", "missing", "base"), BASE)) == \
        "Missing helps: not measured yet (no runs of missing)."


def test_far_decided_verdicts_need_no_more_seeds_and_close_ones_do():
    far = verdict(Claim("Better beats base", "better", "base"), BASE + BETTER)     # 8.7 SE
    assert far.more_seeds == 0
    assert far.seconds_per_seed == pytest.approx(12.0 + 12.0)                      # two variants, 12 s each
    five = records("base", [0.80, 0.82, 0.84, 0.81, 0.83]) + records("ours", [0.81, 0.82, 0.86, 0.81, 0.84])
    assert verdict(Claim("Ours beats base", "ours", "base"), five).more_seeds == 0   # already 5 seeds


def test_raw_units_for_metrics_that_are_not_accuracies():
    sizes = records("float", [1000.0, 1010.0, 990.0], metric="gzip_bytes") + \
        records("int8", [300.0, 312.0, 290.0], metric="gzip_bytes")
    line = sentence(verdict(Claim("int8 is smaller", "int8", "float", metric="gzip_bytes", higher_is_better=False),
                            sizes))
    assert line.startswith("int8 is smaller: supported (-699.3 [-702.2, -696.5], p < 0.001; paired t") and "int8 300.7 vs float 1,000" in line


def on(machine, rs):
    return [{**r, "machine": machine} for r in rs]


def test_a_wall_time_claim_reads_one_machine_and_an_accuracy_claim_reads_all():
    # seeds 1-3 on a fast machine, seeds 4-5 later on one three times slower: pairing the
    # slow machine's seconds with the fast one's would read the machine, not the variant
    fast = on("fast CPU", records("float32", [0.90, 0.91, 0.92], seconds=100.0)
              + records("bf16", [0.90, 0.91, 0.92], seconds=40.0))
    slow = on("slow CPU", records("float32", [0.90, 0.91], seconds=300.0, first_seed=4)
              + records("bf16", [0.90, 0.91], seconds=330.0, first_seed=4))
    faster = Claim("bf16 trains faster", "bf16", "float32", metric="seconds", higher_is_better=False)
    v = verdict(faster, fast + slow)
    assert (v.machine, v.left_out, v.ours.n, v.theirs.n) == ("fast CPU", 4, 3, 3)
    assert v.word == "supported" and v.comparison.diff == pytest.approx(-60.0)
    assert sentence(v).endswith("; runs on fast CPU only, 4 runs on other machines left out.")
    # the machine with the most runs of the scarcer side, not the one recorded last
    assert verdict(faster, slow + fast).machine == "fast CPU"
    keeps = verdict(Claim("bf16 keeps accuracy", "bf16", "float32", kind="equivalent"), fast + slow)
    assert (keeps.machine, keeps.left_out, keeps.ours.n) == (None, 0, 5)
    # one machine, or records from before runs named theirs: nothing left out, nothing said
    alone = verdict(faster, records("float32", [0.9, 0.91], seconds=100.0) + records("bf16", [0.9, 0.91], seconds=40.0))
    assert alone.left_out == 0 and "machines" not in sentence(alone)
    # each side only on a different machine: not measured, and the sentence says why
    apart = verdict(faster, fast[:3] + slow[2:])
    assert apart.word == "not measured" and sentence(apart).endswith("3 runs on other machines left out.")
