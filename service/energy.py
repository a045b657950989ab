"""'Unfamiliar input' answers: the second rejection rule, beside ``min_confidence``
(``service/confidence.py``) and in its style. Above a ``max_energy`` a prediction comes
back without a label, with the reason, and still with its probabilities (and its energy).

A version published since the rule has a second output, ``energy`` (per image
-T * logsumexp(logits / T), T its calibration temperature; ``artifact.metadata.ENERGY_NAME``),
and a threshold chosen on its validation split, ``metadata.json`` ``serving.max_energy``
(``training/publish/release.py``). The energy is high for an image unlike the training
images: docs/evidence.md measures that it tells clothes from digits and noise far better than
the top probability does.

The threshold in force for a request is, first found: the request's own (``?max_energy=``
on ``/predict``, ``parameters.max_energy`` on KServe V2, ``"max_energy"`` in the TF Serving
v1 body), ``SERVICE_MAX_ENERGY``, the version's ``serving.max_energy``, and off. ``off``
(or ``inf``) turns the rule off. A version without the energy output (published before it)
answers as it always did, whatever the threshold.

The backends append the energy to each row as one more column (``service/backends.py``), so
the batcher carries it with its row unchanged; ``LoadedVersion.predict_energy`` splits it off,
and ``inference.run`` hands the routes an ``Answers`` list: the per-item results as before,
and ``energy``, per item, beside them.
"""
from __future__ import annotations

import math

import numpy as np

from .confidence import in_force, withheld
from .errors import BadRequest

PARAMETER = "max_energy"
OFF = "off"


def check(value, where: str) -> float:
    """A threshold: a number (``inf`` or ``"off"``: no limit); anything else is a ValueError."""
    if isinstance(value, str) and value.strip().lower() == OFF:
        return math.inf
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value == -math.inf:
        raise ValueError(f"{where} must be a number or {OFF!r}, got {value!r}")
    return float(value)


def version_default(metadata) -> float:
    """The version's own threshold, ``serving.max_energy`` of its metadata.json; absent means off.
    A bad value fails the version's load."""
    serving = metadata.extra.get("serving") or {}
    if not isinstance(serving, dict):
        raise ValueError(f"metadata.json serving must be an object, got {serving!r}")
    return check(serving.get(PARAMETER, math.inf), f"metadata.json serving.{PARAMETER}")


def requested(value, where: str, text: bool = False) -> float | None:
    """A request's threshold (None when it sent none); a bad one is a 400 naming it.
    A query string is ``text`` (a number, ``inf`` or ``off``); in a JSON body a JSON number
    or the string ``"off"``."""
    if value is None:
        return None
    if text and value.strip().lower() != OFF:
        try:
            value = float(value)
        except ValueError:
            raise BadRequest(f"{where} must be a number or {OFF!r}, got {value!r}") from None
    try:
        return check(value, where)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def threshold(lv, request_value: float | None, service_value: float | None) -> float:
    return in_force(request_value, service_value, lv.info.max_energy)


class Answers(list):
    """The per-item results of ``inference.run`` (a probabilities row or an ApiError), with
    ``energy``: per item its energy, or None (a failed item, a version without the output)."""

    energy: list

    def __init__(self, items):
        super().__init__(items)
        self.energy = [None] * len(self)

    def fill_energy(self, slots, energies) -> None:
        if energies is not None:
            for i, value in zip(slots, energies.tolist()):
                self.energy[i] = value


def energies(results) -> list:
    """Per item its energy or None; a plain list (Monte Carlo dropout's means) has none."""
    return results.energy if isinstance(results, Answers) else [None] * len(results)


def reason(value: float | None, limit: float) -> str | None:
    """Why an answer with energy ``value`` is withheld, or None when it is given."""
    if value is None or value <= limit:
        return None
    return f"unfamiliar input: energy {value:.4f} is above max_energy {limit:g}"


def unfamiliar(results, limit: float) -> dict:
    """Index (as text) -> reason for each answered item the rule withholds."""
    values = energies(results)
    return withheld(results, lambda i, row: reason(values[i], limit))


def count(lv, withheld: int) -> None:
    if withheld and lv.observer is not None:
        lv.observer.unfamiliar(withheld)


def split(out: np.ndarray, has_energy: bool) -> tuple:
    """(probabilities [N,K], energy [N] or None) from a backend's rows (``service/backends.py``)."""
    if not has_energy:
        return out, None
    return out[:, :-1], out[:, -1]


def join(probabilities: np.ndarray, energy) -> np.ndarray:
    """A backend's rows: the probabilities, and the energy as one more column when there is one."""
    if energy is None:
        return probabilities
    return np.concatenate([probabilities, energy.reshape(-1, 1).astype(probabilities.dtype, copy=False)], axis=1)
