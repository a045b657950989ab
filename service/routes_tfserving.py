"""TensorFlow Serving REST API (v1): status, metadata, predict.

``instances`` (row) and ``inputs`` (columnar) forms; an image is either
``{"b64": "<encoded file>"}`` or a pixel array [H,W,C] / [H,W]. A bad item
answers ``{"error": ...}`` in its own slot of ``predictions`` / ``outputs``.
Predict pins a version (``/versions/<v>``), a label (``/labels/stable``,
``/labels/canary``, as TF Serving names them) or neither (the stable/canary split).
``predictions`` / ``outputs`` stay the probabilities; with a ``"min_confidence"`` in
the body (or the service's or the version's, ``service/confidence.py``) the items
whose top probability is below it are listed in ``not_sure``: index -> reason; with a
``"max_energy"`` (a number or ``"off"``; else the service's or the version's,
``service/energy.py``) those whose energy is above it are listed in ``unfamiliar`` the same way.
"""
from __future__ import annotations

from flask import Blueprint, jsonify

from . import confidence, energy, inference
from .errors import ApiError, BadRequest, NotFound
from .imaging import b64decode, decode_image, pixel_batch, pixels_from_array

bp = Blueprint("tfserving", __name__)


def _version_status(name: str, version: int | None):
    states = inference.registry().states(name)
    if version is not None:
        if version not in states:
            raise NotFound(f"model {name!r} version {version} not found")
        states = {version: states[version]}
    rows = []
    for v, st in sorted(states.items(), reverse=True):
        rows.append({"version": str(v), "state": st.state, "status": {
            "error_code": "UNKNOWN" if st.error else "OK", "error_message": st.error}})
    return jsonify({"model_version_status": rows})


@bp.get("/v1/models/<name>")
@bp.get("/v1/models/<name>/versions/<int:version>")
def status(name: str, version: int | None = None):
    return _version_status(name, version)


def _tensor(name: str, dtype: str, dims: list[int]) -> dict:
    return {"dtype": dtype, "name": name, "tensor_shape": {
        "dim": [{"size": str(d), "name": ""} for d in dims], "unknown_rank": False}}


@bp.get("/v1/models/<name>/metadata")
@bp.get("/v1/models/<name>/versions/<int:version>/metadata")
def metadata(name: str, version: int | None = None):
    lv = inference.registry().get(name, version)
    inp, out = lv.info.metadata.input_name, lv.info.metadata.output_name
    signature = {
        "inputs": {inp: _tensor(f"serving_default_{inp}:0", "DT_UINT8", [-1, *lv.info.input.shape])},
        "outputs": {out: _tensor("StatefulPartitionedCall:0", "DT_FLOAT", [-1, len(lv.info.labels)])},
        "method_name": "tensorflow/serving/predict",
    }
    body = {"model_spec": {"name": name, "signature_name": "", "version": str(lv.version)},
            "metadata": {"signature_def": {"signature_def": {"serving_default": signature}}}}
    return inference.model_headers(jsonify(body), lv)


def _decode_instance(value, spec, input_name: str):
    if isinstance(value, dict) and input_name in value:  # named-input row form
        value = value[input_name]
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise BadRequest('an image object must be {"b64": "<base64 encoded file>"}')
        return decode_image(b64decode(value["b64"]), spec, inference.config().max_image_pixels)
    if isinstance(value, list):
        return pixels_from_array(value, spec)
    raise BadRequest("each instance must be {\"b64\": ...} or a pixel array [H,W,C]")


def _row(result):
    if isinstance(result, ApiError):
        return {"error": result.message}
    return result.tolist()  # Python floats, as float(p) of each


@bp.post("/v1/models/<name>:predict")
@bp.post("/v1/models/<name>/versions/<int:version>:predict")
@bp.post("/v1/models/<name>/labels/<label>:predict")
def predict(name: str, version: int | None = None, label: str | None = None):
    body, _ = inference.read_json()
    route = inference.choose(name, version, label, inference.request_key())
    lv = route.version
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object with \"instances\" or \"inputs\"")
    signature = body.get("signature_name", "serving_default")
    if signature != "serving_default":
        raise BadRequest(f"signature {signature!r} not found; this model has serving_default")
    if ("instances" in body) == ("inputs" in body):
        raise BadRequest("send exactly one of \"instances\" (row form) or \"inputs\" (columnar form)")
    asked = confidence.requested(body.get(confidence.PARAMETER), confidence.PARAMETER)
    asked_energy = energy.requested(body.get(energy.PARAMETER), energy.PARAMETER)
    input_name = lv.info.metadata.input_name
    values = body.get("instances", body.get("inputs"))
    if isinstance(values, dict):  # columnar with named input: {"inputs": {"pixels": [...]}}
        if set(values) != {input_name}:
            raise BadRequest(f"the model has one input named {input_name!r}")
        values = values[input_name]
    if not isinstance(values, list):
        raise BadRequest("instances/inputs must be a list of images")
    inference.check_count(len(values))
    items = pixel_batch(values, lv.info.input)  # all plain pixel arrays: one conversion
    if items is None:
        items = inference.decode_each(values, lambda v: _decode_instance(v, lv.info.input, input_name))
    results = inference.run_route(route, items, inference.deadline())
    rows = [_row(r) for r in results]
    key = "predictions" if "instances" in body else "outputs"
    answer = {key: rows, "model_version": str(lv.version)}
    limit = confidence.threshold(lv, asked, inference.config().min_confidence)
    not_sure = confidence.not_sure(results, limit)
    if not_sure:
        answer["not_sure"] = not_sure
        confidence.count(lv, len(not_sure))
    unfamiliar = energy.unfamiliar(results, energy.threshold(lv, asked_energy, inference.config().max_energy))
    if unfamiliar:
        answer["unfamiliar"] = unfamiliar
        energy.count(lv, len(unfamiliar))
    response = inference.json_response(answer, inference.all_finite(results))
    return inference.model_headers(response, lv)
