"""artifact.drift: the p-values (numpy/math, checked against scipy), the test on synthetic
probabilities, and the drift_reference block in metadata.json."""
import json

import numpy as np
import pytest
import scipy.special
import scipy.stats

from artifact import drift
from artifact import metadata as md

LABELS = [f"c{i}" for i in range(10)]


def softmax(logits):
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def answers(rng, n, shares=None, sharpness=4.0):
    """Probabilities of a model that predicts class k with probability shares[k], with a
    confidence that grows with ``sharpness``."""
    shares = np.full(10, 0.1) if shares is None else np.asarray(shares)
    classes = rng.choice(10, n, p=shares / shares.sum())
    logits = rng.normal(0, 1, (n, 10))
    logits[np.arange(n), classes] += sharpness
    return softmax(logits)


@pytest.mark.parametrize("df", [1, 2, 3, 9, 20, 57])
def test_chi2_survival_matches_scipy(df):
    for x in [1e-3, 0.4, 1, 2.5, 7, 9, 16, 30, 80, 250]:
        assert drift.chi2_sf(x, df) == pytest.approx(scipy.stats.chi2.sf(x, df), rel=1e-9, abs=1e-300)
    assert drift.chi2_sf(0.0, df) == 1.0


def test_kolmogorov_survival_matches_scipy():
    for lam in np.linspace(0.02, 3.5, 80):
        assert drift.kolmogorov_sf(lam) == pytest.approx(scipy.special.kolmogorov(lam), abs=1e-12)


def test_chi2_homogeneity_matches_scipy_contingency():
    window, reference = np.array([30, 12, 0, 8, 50]), np.array([600, 580, 0, 610, 590])
    statistic, df, p = drift.chi2_homogeneity(window, reference)
    keep = (window + reference) > 0
    expected = scipy.stats.chi2_contingency(np.stack([window[keep], reference[keep]]), correction=False)
    assert statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert df == expected.dof == 3
    assert p == pytest.approx(expected.pvalue, rel=1e-9)


@pytest.mark.parametrize("n,m,shift", [(100, 6000, 0.0), (100, 6000, 0.25), (500, 6000, 0.1),
                                       (1000, 6000, 0.2), (60, 300, 0.3)])
def test_ks_distance_and_p_value_match_scipy(n, m, shift):
    rng = np.random.default_rng(n + m)
    x, y = rng.normal(shift, 1, n), rng.normal(0, 1, m)
    expected = scipy.stats.ks_2samp(x, y, method="asymp")
    d = drift.ks_distance(x, np.sort(y))
    assert d == pytest.approx(expected.statistic, abs=1e-12)
    # Kolmogorov's limit with Stephens' correction vs scipy's: within 10% where it matters
    assert drift.ks_sf(d, n, m) == pytest.approx(expected.pvalue, rel=0.1, abs=1e-6)


def reference_of(probs, labels=LABELS):
    return drift.Reference.from_dict(drift.reference_block(probs, labels), labels)


def test_the_test_is_quiet_on_answers_like_the_reference():
    rng = np.random.default_rng(0)
    reference = reference_of(answers(rng, 6000))
    p = [drift.compare_probabilities(reference, answers(rng, 300)).p_value for _ in range(200)]
    assert np.mean(np.asarray(p) < drift.ALPHA) <= 0.03      # alpha is 0.01; 200 windows
    assert np.mean(p) > 0.3                                   # p-values spread over [0, 1], not stuck near 0


def test_the_test_fires_on_shifted_classes_and_on_lower_confidence():
    rng = np.random.default_rng(1)
    reference = reference_of(answers(rng, 6000))
    skewed = answers(rng, 300, shares=[0.3] + [0.7 / 9] * 9)          # a class taking more traffic
    unsure = answers(rng, 300, sharpness=2.0)                          # the same classes, less sure
    by_class = drift.compare_probabilities(reference, skewed)
    by_confidence = drift.compare_probabilities(reference, unsure)
    assert by_class.drifted() and by_class.chi2_p < 1e-6
    assert by_confidence.drifted() and by_confidence.ks_p < 1e-6 and by_confidence.chi2_p > 1e-3
    assert by_class.p_value == pytest.approx(min(1.0, 2 * min(by_class.chi2_p, by_class.ks_p)))


def test_reference_block_records_counts_histogram_and_quantiles():
    probs = answers(np.random.default_rng(2), 1000)
    block = drift.reference_block(probs, LABELS, "validation", "tflite")
    assert block["examples"] == 1000 and block["split"] == "validation" and block["format"] == "tflite"
    assert list(block["class_counts"]) == LABELS
    assert list(block["class_counts"].values()) == np.bincount(probs.argmax(1), minlength=10).tolist()
    assert block["confidence_histogram"]["edges"] == list(drift.CONFIDENCE_EDGES)
    assert sum(block["confidence_histogram"]["counts"]) == 1000
    assert len(block["confidence_quantiles"]) == drift.QUANTILES
    assert block["confidence_quantiles"][0] >= probs.max(1).min()
    assert len(json.dumps(block, indent=2)) < 6000                   # small enough to read in metadata.json
    with pytest.raises(ValueError, match="at least"):
        drift.reference_block(probs[:10], LABELS)


def _metadata(**extra):
    return md.Metadata(name="m", labels=list(LABELS), input=md.InputSpec.of(28, 28, "L"), extra=extra)


def test_the_metadata_block_round_trips_and_is_optional(tmp_path):
    block = drift.reference_block(answers(np.random.default_rng(3), 500), LABELS, "validation", "tflite")
    md.write(tmp_path, _metadata(drift_reference=block))
    read = md.read(tmp_path)
    assert read.extra["drift_reference"] == block
    reference = read.drift_reference
    assert reference.examples == 500 and reference.class_counts.sum() == 500
    np.testing.assert_allclose(reference.confidence_quantiles, block["confidence_quantiles"])
    assert _metadata().drift_reference is None                         # versions published before it


@pytest.mark.parametrize("change,field", [
    (lambda b: b["class_counts"].pop("c3"), "drift_reference.class_counts"),
    (lambda b: b["class_counts"].update(c0=b["class_counts"]["c0"] + 1), "drift_reference.class_counts"),
    (lambda b: b["confidence_histogram"].update(edges=[0, 0.5, 1]), "drift_reference.confidence_histogram.edges"),
    (lambda b: b["confidence_quantiles"].reverse(), "drift_reference.confidence_quantiles"),
    (lambda b: b.pop("examples"), "drift_reference.examples"),
])
def test_a_bad_block_is_a_metadata_error_naming_its_field(change, field):
    block = drift.reference_block(answers(np.random.default_rng(4), 500), LABELS)
    change(block)
    with pytest.raises(md.MetadataError, match=field.replace(".", r"\.")):
        _metadata(drift_reference=block)
