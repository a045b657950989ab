"""Out-of-distribution scores: how well a version tells clothes from images that are not
clothes (``training.data.foreign``), and Monte Carlo dropout as the alternative to
temperature scaling.

Every score is "higher = more foreign", so one AUROC convention holds throughout
(positive = foreign image, negative = in-distribution image):

- ``max_probability``: -max softmax(logits / T), what ``min_confidence`` thresholds;
- ``energy``: -logsumexp(logits) (Liu et al., 2020), read from the logits, which the
  probabilities alone do not give back (log p loses the per-row constant);
- ``mahalanobis``: the smallest Mahalanobis distance of the penultimate features to a
  class mean, with class means and one shared covariance fitted on the TRAINING split
  (Lee et al., 2018);
- ``mc_max_probability`` / ``mc_spread``: -max of the mean, and the spread (std over
  passes) of the predicted class, of N dropout passes (Gal and Ghahramani, 2016).

A rejection threshold is chosen on the validation split only (accept ``accept`` of its
in-distribution images); the test split is read only to report.
"""
from __future__ import annotations

import numpy as np

from training.data.pipeline import to_float
from training.keras2 import keras, tf
from training.publish.export import inference_batch_norm

TPR = 0.95                      # FPR is read where 95% of in-distribution images are accepted


# ---------------------------------------------------------------- model outputs

def penultimate_layer(model) -> "keras.layers.Layer":
    """The layer whose output feeds the ``logits`` layer (through the head's dropout, if any):
    the penultimate features Mahalanobis measures."""
    by_output = {id(layer.output): layer for layer in model.layers}
    layer = by_output[id(model.get_layer("logits").input)]
    if isinstance(layer, keras.layers.Dropout):
        layer = by_output[id(layer.input)]
    return layer


def outputs(model, pixels: np.ndarray, batch_size: int = 256) -> dict:
    """``features`` (penultimate) and ``logits`` of a builder model (layers named as in
    ``training.models.cnn``) on uint8 ``pixels``, in inference mode."""
    probe = keras.Model(model.input, [penultimate_layer(model).output, model.get_layer("logits").output])
    features, logits = [], []
    for i in range(0, len(pixels), batch_size):
        f, z = probe(to_float(tf.constant(pixels[i:i + batch_size])), training=False)
        features.append(f.numpy())
        logits.append(z.numpy())
    return {"features": np.concatenate(features).reshape(len(pixels), -1).astype(np.float64),
            "logits": np.concatenate(logits).astype(np.float64)}


def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- scores

def max_probability(probabilities) -> np.ndarray:
    return -np.asarray(probabilities, np.float64).max(axis=1)


def energy(logits, temperature: float = 1.0) -> np.ndarray:
    """-T * logsumexp(logits / T): high for an image whose logits are all small (foreign).
    T = 1 is what the measurements here use; the served energy output uses the version's
    calibration temperature (``training.publish.export.ServingModule``)."""
    t = float(temperature)
    z = np.asarray(logits, np.float64) / t
    top = z.max(axis=1)
    return -t * (top + np.log(np.exp(z - top[:, None]).sum(axis=1)))


class Mahalanobis:
    """Class means and one shared (tied) covariance of penultimate features, fitted on the
    training split; the score is the distance to the nearest class mean."""

    def __init__(self, features, labels, shrinkage: float = 1e-6):
        features, labels = np.asarray(features, np.float64), np.asarray(labels)
        self.classes = np.unique(labels)
        self.means = np.stack([features[labels == c].mean(axis=0) for c in self.classes])
        centred = features - self.means[np.searchsorted(self.classes, labels)]
        covariance = centred.T @ centred / len(features)
        # a dead ReLU unit has zero variance: a small ridge keeps the inverse finite
        covariance += shrinkage * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
        self.precision = np.linalg.inv(covariance)

    def __call__(self, features) -> np.ndarray:
        features = np.asarray(features, np.float64)
        distances = []
        for mean in self.means:
            d = features - mean
            distances.append(np.einsum("ij,jk,ik->i", d, self.precision, d))
        return np.min(np.stack(distances, axis=1), axis=1)


# ---------------------------------------------------------------- measures

def auroc(inside, foreign) -> float:
    """Area under the ROC curve of telling ``foreign`` (positive) from ``inside`` scores."""
    from sklearn.metrics import roc_auc_score
    inside, foreign = np.asarray(inside, np.float64), np.asarray(foreign, np.float64)
    y = np.r_[np.zeros(len(inside)), np.ones(len(foreign))]
    return float(roc_auc_score(y, np.r_[inside, foreign]))


def accept_threshold(inside, accept: float = TPR) -> float:
    """The score below or at which ``accept`` of the in-distribution ``inside`` scores fall:
    an image scoring above it is rejected as foreign."""
    return float(np.quantile(np.asarray(inside, np.float64), accept))


def fpr_at_tpr(inside, foreign, tpr: float = TPR) -> float:
    """The share of foreign images accepted when ``tpr`` of in-distribution images are
    (the usual FPR@95TPR, with in-distribution as the accepted class)."""
    return float(np.mean(np.asarray(foreign, np.float64) <= accept_threshold(inside, tpr)))


def roc_curve(inside, foreign) -> tuple:
    """(FPR, TPR) of foreign-as-positive, for the plot."""
    from sklearn.metrics import roc_curve as curve
    y = np.r_[np.zeros(len(inside)), np.ones(len(foreign))]
    fpr, tpr, _ = curve(y, np.r_[np.asarray(inside, np.float64), np.asarray(foreign, np.float64)])
    return fpr, tpr


# ---------------------------------------------------------------- Monte Carlo dropout

def _head_tail(model):
    """(dropout layer, the layers after it) when the model's only dropout is followed by a
    plain chain of layers to the output (the builders' head); else None."""
    drops = [i for i, layer in enumerate(model.layers) if isinstance(layer, keras.layers.Dropout)]
    if len(drops) != 1:
        return None
    tail = model.layers[drops[0] + 1:]
    previous = model.layers[drops[0]]
    for layer in tail:
        if layer.input is not previous.output:
            return None
        previous = layer
    return (model.layers[drops[0]], tail) if tail and previous.output is model.output else None


def mc_passes(model, pixels: np.ndarray, passes: int, seeds, batch_size: int = 256) -> np.ndarray:
    """Probabilities [len(seeds), passes, N, K]: per seed, ``passes`` dropout passes (batch
    norm in inference mode), the random draws seeded by that seed.

    Where the only dropout is the head's, everything before it is deterministic: it runs
    once and only the tail runs per pass (the same distribution as whole passes, at a
    fraction of the cost); otherwise every pass runs the whole model."""
    head = _head_tail(model)
    batches = [to_float(tf.constant(pixels[i:i + batch_size])) for i in range(0, len(pixels), batch_size)]
    if head is not None:
        dropout, tail = head
        trunk = keras.Model(model.input, dropout.input)
        batches = [trunk(x, training=False) for x in batches]

    def one_pass(x):
        if head is None:
            return model(x, training=True).numpy()
        y = dropout(x, training=True)
        for layer in tail:
            y = layer(y, training=False)
        return y.numpy()

    out = []
    with inference_batch_norm(model):
        for seed in seeds:
            keras.utils.set_random_seed(int(seed))
            out.append(np.concatenate([np.stack([one_pass(x) for _ in range(passes)]) for x in batches], axis=1))
    return np.stack(out).astype(np.float64)


def mc_scores(samples: np.ndarray) -> dict:
    """The mean probabilities of ``samples`` [passes, N, K] and the two scores read from them."""
    mean = samples.mean(axis=0)
    top = mean.argmax(axis=1)
    spread = samples.std(axis=0)[np.arange(len(top)), top]
    return {"mean": mean, "mc_max_probability": -mean.max(axis=1), "mc_spread": spread}
