"""Calibration: a temperature fitted on the validation split, and the measures that
show whether a version's probabilities can be taken at their word.

Temperature scaling divides the logits by one number T before the softmax: the
ranking of classes (so every answer and the accuracy) stays as it is, only the
confidence moves. The model's output is already probabilities, so the logits are
recovered as log(p): log p differs from the logits by a per-row constant, which
the softmax ignores, so softmax(log(p) / T) equals softmax(logits / T) for any
model (pruned, quantization-aware, transfer) without a ``logits`` layer.

T is fitted on the validation split only; the test split is read only to report
the expected calibration error (ECE) and negative log-likelihood (NLL) before and
after, never to choose T.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

BINS = 15                  # the usual ECE bin count (Guo et al., 2017), equal-width over confidence
EPSILON = 1e-12            # floor for log(p): a float32 softmax can round a class to exactly 0
T_RANGE = (0.05, 20.0)     # wide enough for any model worth publishing; beyond it the fit is a bug


def temper(probs, temperature: float) -> np.ndarray:
    """softmax(log(p) / T), row by row (T = 1 returns the probabilities unchanged, up to rounding)."""
    logits = np.log(np.maximum(np.asarray(probs, np.float64), EPSILON)) / float(temperature)
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def nll(probs, y) -> float:
    """Mean negative log-likelihood of the true class."""
    probs, y = np.asarray(probs, np.float64), np.asarray(y, np.int64)
    return float(-np.mean(np.log(np.maximum(probs[np.arange(len(y)), y], EPSILON))))


def ece(probs, y, bins: int = BINS) -> float:
    """Expected calibration error: the mean |accuracy - confidence| over ``bins`` equal-width
    confidence bins, each weighted by its share of the examples."""
    probs, y = np.asarray(probs, np.float64), np.asarray(y, np.int64)
    confidence, correct = probs.max(axis=1), (probs.argmax(axis=1) == y)
    # bin i holds confidences in (i/bins, (i+1)/bins]; a confidence of exactly 0 cannot occur
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            total += members.sum() * abs(correct[members].mean() - confidence[members].mean())
    return float(total / max(len(y), 1))


def fit_temperature(probs_val, y_val) -> float:
    """The T minimising the NLL of softmax(log(p) / T) on the validation split.

    The NLL is convex in 1/T, so a coarse grid in log T followed by a golden-section
    refinement around the best grid point finds the minimum without scipy.
    """
    probs_val, y_val = np.asarray(probs_val, np.float64), np.asarray(y_val, np.int64)
    if len(y_val) == 0:
        raise ValueError("no validation examples to fit a temperature on")

    def loss(log_t: float) -> float:
        return nll(temper(probs_val, np.exp(log_t)), y_val)

    lo, hi = np.log(T_RANGE[0]), np.log(T_RANGE[1])
    grid = np.linspace(lo, hi, 61)
    best = int(np.argmin([loss(v) for v in grid]))
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    ratio = (np.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = loss(c), loss(d)
    for _ in range(40):                      # the bracket shrinks to 0.618**40 of ~0.2: far below any rounding
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = loss(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = loss(d)
    return float(np.exp((a + b) / 2))


def measures(probs, y, temperature: float) -> dict:
    """ECE and NLL of calibrated probabilities ``probs`` (served with ``temperature`` baked
    in) and of the same probabilities un-tempered (softmax(log(p) * T)): "before" is what the
    un-calibrated graph answers, up to float rounding."""
    before = temper(probs, 1.0 / temperature)
    return {"ece_before": round(ece(before, y), 4), "ece_after": round(ece(probs, y), 4),
            "nll_before": round(nll(before, y), 4), "nll_after": round(nll(probs, y), 4)}


def reliability_diagram(probs, y, path: Path, title: str = "", bins: int = BINS) -> None:
    """A PNG of accuracy against confidence per bin (the diagonal is perfect calibration),
    with each bin's share of the examples, titled with the ECE."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    probs, y = np.asarray(probs, np.float64), np.asarray(y, np.int64)
    confidence, correct = probs.max(axis=1), (probs.argmax(axis=1) == y)
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    centers = (np.arange(bins) + 0.5) / bins
    counts = np.bincount(index, minlength=bins)
    accuracy = np.array([correct[index == b].mean() if counts[b] else 0.0 for b in range(bins)])
    mean_conf = np.array([confidence[index == b].mean() if counts[b] else 0.0 for b in range(bins)])
    fig, (ax, share) = plt.subplots(2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.bar(centers, accuracy, width=1 / bins, edgecolor="black", label="accuracy")
    ax.bar(centers, mean_conf - accuracy, bottom=accuracy, width=1 / bins, color="tab:red", alpha=0.4,
           label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1)
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    ax.set_title(f"{title}: ECE {ece(probs, y, bins):.4f} ({bins} bins)".lstrip(": "))
    share.bar(centers, counts / max(len(y), 1), width=1 / bins, edgecolor="black")
    share.set_xlabel("confidence")
    share.set_ylabel("share")
    share.set_xlim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
