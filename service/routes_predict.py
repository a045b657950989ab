"""The convenience API for people: ``POST /predict`` and the upload page.

``POST /predict`` takes a raw image body (``Content-Type: image/*``) or a
multipart upload with one or more files; ``?top_k=`` (default 5),
``?model=`` and ``?version=`` or ``?label=`` (stable, canary) are optional;
without either the stable/canary split picks the version. It answers per file the
``label`` (top-1) and the top-k labels with probabilities, and the model name and
version that produced them. With a top probability below ``min_confidence``
(``?min_confidence=``, else the service's or the version's, ``service/confidence.py``)
``label`` is null and ``reason`` says why; the top-k are still there. A version with the
energy output answers each file's ``energy`` too, and above ``max_energy`` (``?max_energy=``,
``off`` for none, else the service's or the version's, ``service/energy.py``) ``label`` is null
with an "unfamiliar input" ``reason``. ``?mc_passes=N``
(tf backend, a version with the Monte Carlo dropout signature) answers the mean of N
dropout passes, each top-k entry with its ``std`` over them.
"""
from __future__ import annotations

from flask import Blueprint, current_app, request

from . import confidence, energy, inference
from .errors import ApiError, BadRequest, UnsupportedMediaType
from .imaging import decode_image

bp = Blueprint("predict", __name__)


@bp.get("/")
def index():
    return current_app.send_static_file("index.html")


def _int_arg(name: str, default: int | None) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {name} must be an integer") from None
    if value < 1:
        raise BadRequest(f"query parameter {name} must be >= 1")
    return value


def _uploads() -> list[tuple[str, bytes]]:
    mimetype = request.mimetype
    if mimetype.startswith("image/"):
        return [("", request.get_data(cache=False))]
    if mimetype == "multipart/form-data":
        files = [(f.filename or key, f.read()) for key in request.files for f in request.files.getlist(key)]
        if not files:
            raise BadRequest("the multipart upload holds no files")
        return files
    raise UnsupportedMediaType(f"Content-Type {mimetype or 'none'!r} is not supported; "
                               "send image/* or multipart/form-data")


@bp.post("/predict")
def predict():
    top_k = _int_arg("top_k", 5)
    version = _int_arg("version", None)
    uploads = _uploads()
    label = request.args.get("label")
    asked = confidence.requested(request.args.get(confidence.PARAMETER),
                                 f"query parameter {confidence.PARAMETER}", text=True)
    asked_energy = energy.requested(request.args.get(energy.PARAMETER), f"query parameter {energy.PARAMETER}",
                                    text=True)
    passes = confidence.requested_passes(request.args.get(confidence.MC_PARAMETER))
    if version is not None and label is not None:
        raise BadRequest("pin a version or a label, not both")
    reg = inference.registry()
    route = inference.choose(request.args.get("model") or reg.default_model(), version, label,
                             inference.request_key())
    lv = route.version
    inference.check_count(len(uploads))
    max_pixels = inference.config().max_image_pixels
    items = inference.decode_each([data for _, data in uploads],
                                  lambda data: decode_image(data, lv.info.input, max_pixels))
    if passes is None:
        results, spreads = inference.run_route(route, items, inference.deadline()), None
    else:
        results, spreads = confidence.mc_run(lv, items, passes)
    labels = lv.info.labels
    k = min(top_k, len(labels))
    limit = confidence.threshold(lv, asked, inference.config().min_confidence)
    energy_limit = energy.threshold(lv, asked_energy, inference.config().max_energy)
    energies = energy.energies(results)
    answers, withheld, unfamiliar = [], 0, 0
    for n, ((filename, _), result) in enumerate(zip(uploads, results)):
        entry = {"filename": filename} if filename else {}
        if isinstance(result, ApiError):
            entry["error"] = result.message
        else:
            order = result.argsort()[::-1][:k]
            strange = energy.reason(energies[n], energy_limit)
            why = strange or confidence.reason(result, limit)
            entry["label"] = labels[int(result.argmax())] if why is None else None
            if why is not None:
                entry["reason"] = why
                unfamiliar += strange is not None
                withheld += strange is None
            if energies[n] is not None:
                entry["energy"] = round(energies[n], 4)
            entry["top_k"] = [{"label": labels[i], "index": int(i), "probability": round(float(result[i]), 6)}
                              for i in order]
            if spreads is not None:
                for top in entry["top_k"]:
                    top["std"] = round(float(spreads[n][top["index"]]), 6)
        answers.append(entry)
    confidence.count(lv, withheld)
    energy.count(lv, unfamiliar)
    body = {"model": {"name": lv.name, "version": lv.version, "backend": lv.backend_name},
            "predictions": answers}
    if passes is not None:
        body["mc_dropout"] = {"passes": passes}
    return inference.model_headers(inference.json_response(body, inference.all_finite(results)), lv)
