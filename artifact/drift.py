"""Prediction drift: a version's reference at publish, and the test that compares served
predictions with it. Shared by the service (``service/drift.py``, a sliding window per
served version) and ``python -m training drift`` (the captured requests).

Only what every runner outputs is used: the probabilities. Two summaries of them are
compared with the reference the version recorded on its held-out validation split
(the ``drift_reference`` block of ``metadata.json``):

* which class is predicted: a chi-squared test of homogeneity on the 2 x K table of
  window counts against reference counts (a 2-sample test, so the reference's own
  sampling noise is accounted for); it sees images that land on one class (a brightness
  shift answered "Bag", digits answered "Trouser");
* how sure the model is: a two-sample Kolmogorov-Smirnov test of the top-1 probability
  against the reference's quantiles; it sees images spread over the classes but answered
  with less confidence (noise, photographs).

The drift p-value is the smaller p-value times 2 (Bonferroni), capped at 1: an alarm at
p < alpha has a false-alarm rate of at most alpha. This is the "black-box shift detection"
recipe of TFDV, alibi-detect and Evidently users (a test on the softmax outputs), in
numpy and ``math`` only: the serve image has no scipy. ``tests/artifact/test_artifact_drift.py``
checks both p-values against scipy.stats.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

BLOCK = "drift_reference"          # the metadata.json key
# Fixed top-1 probability bins: the service's confidence histogram buckets
# (service/metrics.py CONFIDENCE_BUCKETS) with 0 in front, so the two read alike.
CONFIDENCE_EDGES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
QUANTILES = 200                    # reference top-1 quantiles at levels (i + 0.5) / 200: 0.25% of CDF apart
DECIMALS = 6                       # stored quantiles are rounded; window values are rounded alike before the KS
MIN_IMAGES = 50                    # below this a window is not tested: 10 classes need ~5 expected images each
ALPHA = 0.01                       # the alarm threshold the benchmark measures (benchmarks/drift.py)
TEST_NAME = "chi2 predicted class + KS top-1 probability, Bonferroni x2"


# -- distributions (numpy/math only; checked against scipy in the tests) ------------------

def _gamma_p_series(a: float, x: float) -> float:
    """Regularized lower incomplete gamma P(a, x) by its series (converges fast for x < a + 1)."""
    term = total = 1.0 / a
    ap = a
    for _ in range(10_000):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * 1e-16:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _gamma_q_fraction(a: float, x: float) -> float:
    """Regularized upper incomplete gamma Q(a, x) by its continued fraction (modified Lentz),
    for x >= a + 1, where the series would need many terms."""
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def chi2_sf(x: float, df: float) -> float:
    """P(X > x) for X chi-squared with ``df`` degrees of freedom: Q(df/2, x/2)."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if x <= 0:
        return 1.0
    a, half = df / 2.0, x / 2.0
    if half < a + 1.0:
        return max(0.0, 1.0 - _gamma_p_series(a, half))
    return min(1.0, _gamma_q_fraction(a, half))


def kolmogorov_sf(lam: float) -> float:
    """P(K > lam) for Kolmogorov's limiting distribution (scipy.special.kolmogorov)."""
    if lam <= 0:
        return 1.0
    if lam < 1.0:
        # the theta-function form converges fast for small lam: P(K <= lam)
        k = np.arange(1, 40)
        cdf = math.sqrt(2 * math.pi) / lam * float(np.sum(np.exp(-((2 * k - 1) ** 2) * math.pi ** 2 / (8 * lam ** 2))))
        return min(1.0, max(0.0, 1.0 - cdf))
    k = np.arange(1, 40)
    return min(1.0, max(0.0, 2.0 * float(np.sum((-1.0) ** (k - 1) * np.exp(-2.0 * k ** 2 * lam ** 2)))))


def ks_sf(d: float, n: int, m: int) -> float:
    """Two-sided p-value of a two-sample KS statistic ``d`` between samples of ``n`` and ``m``
    values: Kolmogorov's limit at the effective size n*m/(n+m), with Stephens' small-sample
    correction (sqrt(ne) + 0.12 + 0.11/sqrt(ne)) * d."""
    ne = n * m / (n + m)
    root = math.sqrt(ne)
    return kolmogorov_sf((root + 0.12 + 0.11 / root) * d)


# -- the reference a version records at publish -------------------------------------------

def top1(probabilities: np.ndarray) -> tuple:
    """(predicted class index, top-1 probability) of each row."""
    probs = np.asarray(probabilities, np.float64)
    if probs.ndim != 2 or probs.shape[1] == 0:
        raise ValueError(f"probabilities must be [N, K], got shape {probs.shape}")
    return probs.argmax(1), probs.max(1)


def _quantile_levels(q: int = QUANTILES) -> np.ndarray:
    return (np.arange(q) + 0.5) / q


def reference_block(probabilities: np.ndarray, labels: list, split: str = "validation",
                    fmt: Optional[str] = None) -> dict:
    """The ``drift_reference`` block of ``probabilities`` (rows in ``labels`` order), as a
    version's held-out ``split`` was answered by its ``fmt`` file: predicted-class counts,
    the top-1 probability histogram on CONFIDENCE_EDGES and its QUANTILES quantiles."""
    predicted, confidence = top1(probabilities)
    if len(predicted) < MIN_IMAGES:
        raise ValueError(f"a drift reference needs at least {MIN_IMAGES} images, got {len(predicted)}")
    if np.asarray(probabilities).shape[1] != len(labels):
        raise ValueError(f"{np.asarray(probabilities).shape[1]} probabilities per row for {len(labels)} labels")
    counts = np.bincount(predicted, minlength=len(labels))
    hist, _ = np.histogram(np.clip(confidence, 0.0, 1.0), bins=CONFIDENCE_EDGES)
    quantiles = np.quantile(confidence, _quantile_levels(), method="linear")
    return {"split": split, "format": fmt, "examples": int(len(predicted)), "test": TEST_NAME,
            "class_counts": {name: int(n) for name, n in zip(labels, counts)},
            "confidence_histogram": {"edges": list(CONFIDENCE_EDGES), "counts": [int(n) for n in hist]},
            "confidence_quantiles": [round(float(v), DECIMALS) for v in quantiles]}


@dataclass(frozen=True)
class Reference:
    """A parsed ``drift_reference`` block."""

    labels: tuple
    class_counts: np.ndarray          # predicted-class counts on the reference split, in labels order
    confidence_quantiles: np.ndarray  # non-decreasing, QUANTILES-many (or as stored)
    confidence_counts: np.ndarray     # histogram on CONFIDENCE_EDGES
    examples: int
    block: dict                       # as stored

    @property
    def class_shares(self) -> np.ndarray:
        return self.class_counts / max(int(self.class_counts.sum()), 1)

    @property
    def confidence_shares(self) -> np.ndarray:
        return self.confidence_counts / max(int(self.confidence_counts.sum()), 1)

    @classmethod
    def from_dict(cls, data, labels: list) -> "Reference":
        """Validate a block against the version's ``labels``; a ValueError names the field."""
        def need(ok: bool, where: str, what: str):
            if not ok:
                raise ValueError(f"'{BLOCK}.{where}' must be {what}")

        need(isinstance(data, dict), "(block)", "an object")
        for key in ("examples", "class_counts", "confidence_histogram", "confidence_quantiles"):
            need(key in data, key, "present")
        examples = data["examples"]
        need(isinstance(examples, int) and not isinstance(examples, bool) and examples >= MIN_IMAGES,
             "examples", f"an integer >= {MIN_IMAGES}")
        counts = data["class_counts"]
        need(isinstance(counts, dict) and list(counts) == list(labels), "class_counts",
             "an object with one count per label, in the version's label order")
        values = list(counts.values())
        need(all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values) and sum(values) == examples,
             "class_counts", "non-negative integers adding up to examples")
        hist = data["confidence_histogram"]
        need(isinstance(hist, dict) and hist.get("edges") == list(CONFIDENCE_EDGES), "confidence_histogram.edges",
             f"{list(CONFIDENCE_EDGES)}")
        need(isinstance(hist.get("counts"), list) and len(hist["counts"]) == len(CONFIDENCE_EDGES) - 1
             and all(isinstance(v, int) and v >= 0 for v in hist["counts"]) and sum(hist["counts"]) == examples,
             "confidence_histogram.counts", f"{len(CONFIDENCE_EDGES) - 1} counts adding up to examples")
        quantiles = data["confidence_quantiles"]
        need(isinstance(quantiles, list) and len(quantiles) >= 10
             and all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0 for v in quantiles)
             and all(a <= b for a, b in zip(quantiles, quantiles[1:])), "confidence_quantiles",
             "at least 10 non-decreasing numbers in [0, 1]")
        return cls(tuple(labels), np.asarray(values, np.int64), np.asarray(quantiles, np.float64),
                   np.asarray(hist["counts"], np.int64), examples, data)


# -- the test -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Result:
    images: int
    chi2: float          # chi-squared statistic of predicted-class counts vs the reference
    chi2_df: int
    chi2_p: float
    ks: float            # KS distance of top-1 probabilities vs the reference
    ks_p: float
    p_value: float       # min(1, 2 * min(chi2_p, ks_p))

    def drifted(self, alpha: float = ALPHA) -> bool:
        return self.p_value < alpha

    def to_dict(self) -> dict:
        return {"images": self.images, "p_value": _round(self.p_value), "chi2": round(self.chi2, 4),
                "chi2_df": self.chi2_df, "chi2_p": _round(self.chi2_p), "ks": round(self.ks, 4),
                "ks_p": _round(self.ks_p)}


def _round(p: float) -> float:
    return float(f"{p:.4g}")


def chi2_homogeneity(window: np.ndarray, reference: np.ndarray) -> tuple:
    """(statistic, df, p) of the 2 x K chi-squared test that two count vectors come from one
    distribution (scipy.stats.chi2_contingency without continuity correction); classes
    absent from both are left out."""
    table = np.stack([np.asarray(window, np.float64), np.asarray(reference, np.float64)])
    table = table[:, table.sum(0) > 0]
    if table.shape[1] < 2 or (table.sum(1) == 0).any():
        return 0.0, 0, 1.0
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    df = table.shape[1] - 1
    return statistic, df, chi2_sf(statistic, df)


def ks_distance(sample: np.ndarray, reference_sorted: np.ndarray) -> float:
    """sup |F_sample - F_reference| over both samples' values (the two-sample KS statistic)."""
    sample = np.sort(np.asarray(sample, np.float64))
    points = np.concatenate([sample, reference_sorted])
    f_sample = np.searchsorted(sample, points, side="right") / len(sample)
    f_reference = np.searchsorted(reference_sorted, points, side="right") / len(reference_sorted)
    return float(np.max(np.abs(f_sample - f_reference)))


def compare(reference: Reference, predicted: np.ndarray, confidence: np.ndarray) -> Result:
    """Compare a window (predicted class indices and top-1 probabilities) with ``reference``.
    The reference's quantiles stand for its full sample (``reference.examples`` images),
    so the KS p-value uses that size."""
    predicted = np.asarray(predicted, np.int64)
    if len(predicted) == 0:
        raise ValueError("no images to test")
    counts = np.bincount(predicted, minlength=len(reference.labels))[:len(reference.labels)]
    chi2, df, chi2_p = chi2_homogeneity(counts, reference.class_counts)
    rounded = np.round(np.asarray(confidence, np.float64), DECIMALS)
    ks = ks_distance(rounded, reference.confidence_quantiles)
    ks_p = ks_sf(ks, len(rounded), reference.examples)
    return Result(len(predicted), chi2, df, chi2_p, ks, ks_p, min(1.0, 2.0 * min(chi2_p, ks_p)))


def compare_probabilities(reference: Reference, probabilities: np.ndarray) -> Result:
    return compare(reference, *top1(probabilities))
