"""'Not sure' answers: below a ``min_confidence`` a prediction comes back without a
label, with the reason, and still with its probabilities.

The threshold in force for a request is, first found: the request's own
(``?min_confidence=`` on ``/predict``, ``parameters.min_confidence`` on KServe V2,
``"min_confidence"`` in the TF Serving v1 body), ``SERVICE_MIN_CONFIDENCE``, the
version's ``metadata.json`` ``serving.min_confidence``, and 0 (always answer).
An answer is withheld when its top probability is below the threshold, the rule
``training/publish/evaluate.py`` tabulates as accuracy against share answered.

Monte Carlo dropout (``?mc_passes=N`` on ``/predict``, the tf backend) lives here too:
the mean of N dropout passes and their spread, to which the same threshold applies.
"""
from __future__ import annotations

import math

import numpy as np

from artifact.saved_model import MAX_PASSES

from .errors import ApiError, BadRequest

PARAMETER = "min_confidence"


def check(value, where: str) -> float:
    """A threshold in [0, 1]; anything else is a ValueError naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 <= value <= 1.0:
        raise ValueError(f"{where} must be a number in [0, 1], got {value!r}")
    return float(value)


def version_default(metadata) -> float:
    """The version's own default: the top-level ``serving`` block of its metadata.json,
    ``{"min_confidence": 0.8}``; absent means 0.0. A bad value fails the version's load."""
    serving = metadata.extra.get("serving") or {}
    if not isinstance(serving, dict):
        raise ValueError(f"metadata.json serving must be an object, got {serving!r}")
    return check(serving.get(PARAMETER, 0.0), f"metadata.json serving.{PARAMETER}")


def requested(value, where: str, text: bool = False) -> float | None:
    """A request's threshold (None when it sent none); a bad one is a 400 naming it.
    A query string is ``text``; in a JSON body only a JSON number is a number."""
    if value is None:
        return None
    if text:
        try:
            value = float(value)
        except ValueError:
            raise BadRequest(f"{where} must be a number in [0, 1], got {value!r}") from None
    try:
        return check(value, where)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def in_force(request_value: float | None, service_value: float | None, version_value: float) -> float:
    """A rule's threshold for one request: the request's own, else the service's setting,
    else the version's metadata (``min_confidence`` here, ``max_energy`` in ``energy``)."""
    if request_value is not None:
        return request_value
    if service_value is not None:
        return service_value
    return version_value


def threshold(lv, request_value: float | None, service_value: float | None) -> float:
    return in_force(request_value, service_value, lv.info.min_confidence)


def reason(row: np.ndarray, limit: float) -> str | None:
    """Why ``row``'s answer is withheld, or None when it is given."""
    top = float(np.max(row))
    if top >= limit:
        return None
    return f"top probability {top:.4f} is below min_confidence {limit:g}"


def withheld(results: list, why) -> dict:
    """Index (as text) -> ``why(i, row)`` for each answered item a rule withholds (``why`` not
    None); failed items are not counted here (they are errors). Both rules use it."""
    reasons = {}
    for i, row in enumerate(results):
        if not isinstance(row, ApiError):
            text = why(i, row)
            if text is not None:
                reasons[str(i)] = text
    return reasons


def not_sure(results: list, limit: float) -> dict:
    """Index (as text) -> reason for each answered item below ``limit``."""
    return withheld(results, lambda i, row: reason(row, limit))


def count(lv, withheld: int) -> None:
    if withheld and lv.observer is not None:
        lv.observer.not_sure(withheld)


# ---------------------------------------------------------------- Monte Carlo dropout
# ``?mc_passes=N`` on ``/predict``: N stochastic passes (dropout on, batch norm in inference
# mode) of the tf backend; the answer is their mean, with each top-k probability's spread (std).
# Only a version whose SavedModel has the ``mc_dropout`` signature (published since it was
# added) and that is served by the tf backend can; any other is a 400 saying so. The passes
# run outside the batcher: one call of N x the request's rows, costing about N times one
# pass (docs/evidence.md measures it), so a deployment that offers it sizes for it.

MC_PARAMETER = "mc_passes"


def requested_passes(value) -> int | None:
    """The request's ``mc_passes`` (query text), None when absent; a bad one is a 400."""
    if value is None:
        return None
    try:
        passes = int(value)
    except ValueError:
        raise BadRequest(f"query parameter {MC_PARAMETER} must be an integer in [1, {MAX_PASSES}], "
                         f"got {value!r}") from None
    if not 1 <= passes <= MAX_PASSES:
        raise BadRequest(f"query parameter {MC_PARAMETER} must be an integer in [1, {MAX_PASSES}], got {passes}")
    return passes


def mc_run(lv, items: list, passes: int) -> tuple:
    """(means, spreads): per item its mean probabilities and their std over ``passes``, or
    the item's ApiError in both; a version that cannot is a 400 before anything runs."""
    if not getattr(lv.backend, "mc_dropout", False):
        why = ("it is served by the tflite backend (Monte Carlo dropout needs SERVICE_BACKEND=tf)"
               if lv.backend_name != "tf" else "its SavedModel has no 'mc_dropout' signature "
               "(published before it was exported, or a model without plain dropout)")
        raise BadRequest(f"{lv.name}/{lv.version} cannot answer {MC_PARAMETER}: {why}")
    good = [i for i, item in enumerate(items) if isinstance(item, np.ndarray)]
    if not good:
        raise BadRequest("; ".join(f"item {i}: {item.message}" for i, item in enumerate(items)))
    mean, std = lv.backend.predict_mc(np.stack([items[i] for i in good]), passes)
    if lv.observer is not None:
        lv.observer.answered(mean)
    means, spreads = list(items), list(items)
    for row, spread, i in zip(mean, std, good):
        means[i], spreads[i] = row, spread
    return means, spreads
