"""KServe V2 / Open Inference Protocol, with Triton's classification and
binary tensor data extensions (what ``tritonclient.http`` speaks).

Input: one tensor, either UINT8 [N,H,W,C] (data flat or nested, or binary)
or BYTES [N] of encoded image files (binary, base64 strings, or {"b64": ...}).
Without ``/versions/<v>`` the stable/canary split picks the version (keyed by
``X-Request-ID`` or the body's ``id``); ``model_version`` names it.
Output ``probabilities`` FP32 [N,K], or with ``classification: k`` BYTES
[N,k] strings "score:index:label". Items that fail come back as NaN rows
(classification "nan:-1:error") and are listed in ``parameters.errors``.
A request ``parameters.min_confidence`` (else the service's or the version's,
``service/confidence.py``) leaves the outputs as they are and lists the items whose
top probability is below it in ``parameters.not_sure``, a JSON string of index ->
reason like ``errors`` (V2 parameter values are scalars). ``parameters.max_energy`` (a number
or ``"off"``; else the service's or the version's, ``service/energy.py``) lists the items whose
energy is above it in ``parameters.unfamiliar`` the same way.
"""
from __future__ import annotations

import json
import math
import struct

import numpy as np
from flask import Blueprint, Response, jsonify

from . import confidence, energy, inference
from .errors import ApiError, BadRequest, Unavailable
from .imaging import ImageError, b64decode, decode_image

bp = Blueprint("v2", __name__)
EXTENSIONS = ["classification", "binary_tensor_data"]


@bp.get("/v2")
def server_metadata():
    return jsonify({"name": "cnn-image-classifier", "version": "1", "extensions": EXTENSIONS})


@bp.get("/v2/health/live")
def live():
    return jsonify({"live": True})


@bp.get("/v2/health/ready")
def ready():
    reg = inference.registry()
    if not reg.ready():
        why = "shutting down" if reg.draining else (
            "models are loading" if reg.names() or not reg.scanned else "no model in the repository")
        raise Unavailable(f"not ready: {why}", reg.config.retry_after_s)
    return jsonify({"ready": True})


def _io_names(lv):
    return lv.info.metadata.input_name, lv.info.metadata.output_name


@bp.get("/v2/models/<name>")
@bp.get("/v2/models/<name>/versions/<int:version>")
def model_metadata(name: str, version: int | None = None):
    reg = inference.registry()
    lv = reg.get(name, version)
    input_name, output_name = _io_names(lv)
    served = sorted(v.version for v in reg.serving() if v.name == name)
    cfg = inference.config()
    body = {
        "name": name, "versions": [str(v) for v in served],
        "platform": "tensorflow_savedmodel" if lv.backend_name == "tf" else "tensorflow_lite",
        "inputs": [{"name": input_name, "datatype": "UINT8", "shape": [-1, *lv.info.input.shape]}],
        "outputs": [{"name": output_name, "datatype": "FP32", "shape": [-1, len(lv.info.labels)]}],
        "parameters": {"version": str(lv.version), "backend": lv.backend_name, "device": lv.device,
                       "labels": list(lv.info.labels), "max_batch_size": cfg.max_batch_size,
                       "max_items": cfg.max_items},
    }
    return inference.model_headers(jsonify(body), lv)


def _version_policy(cfg) -> dict:
    if cfg.version_policy == "specific":
        return {"specific": {"versions": cfg.versions}}
    return {"latest": {"num_versions": 1}} if cfg.version_policy == "latest" else {"all": {}}


@bp.get("/v2/models/<name>/config")
@bp.get("/v2/models/<name>/versions/<int:version>/config")
def model_config(name: str, version: int | None = None):
    """Triton's model configuration JSON: the batch limit before the first request.

    ``max_batch_size`` is the model call's batch; a request may hold up to
    ``max_items`` images (``parameters``), run in chunks of that size."""
    cfg = inference.config()
    lv = inference.registry().get(name, version)
    input_name, output_name = _io_names(lv)
    tf = lv.backend_name == "tf"
    body = {
        "name": name,
        "platform": "tensorflow_savedmodel" if tf else "tensorflow_lite",
        "backend": "tensorflow" if tf else "tflite",
        "version_policy": _version_policy(cfg),
        "max_batch_size": cfg.max_batch_size,
        "input": [{"name": input_name, "data_type": "TYPE_UINT8", "format": "FORMAT_NHWC",
                   "dims": list(lv.info.input.shape)}],
        "output": [{"name": output_name, "data_type": "TYPE_FP32", "dims": [len(lv.info.labels)]}],
        "dynamic_batching": {
            "max_queue_delay_microseconds": int(cfg.max_batch_delay_ms * 1000),
            "default_queue_policy": {"max_queue_size": cfg.max_queue,
                                     "default_timeout_microseconds": int(cfg.request_timeout_ms * 1000)}},
        "instance_group": [{"kind": "KIND_GPU" if lv.device.startswith("GPU") else "KIND_CPU", "count": 1}],
        "parameters": {"max_items": {"string_value": str(cfg.max_items)},
                       "device": {"string_value": lv.device}},
    }
    return inference.model_headers(jsonify(body), lv)


@bp.get("/v2/models/<name>/ready")
@bp.get("/v2/models/<name>/versions/<int:version>/ready")
def model_ready(name: str, version: int | None = None):
    lv = inference.registry().get(name, version)  # 404 unknown, 503 loading
    return inference.model_headers(jsonify({"name": name, "version": str(lv.version), "ready": True}), lv)


def _split_bytes(raw: bytes) -> list[bytes]:
    """Triton's BYTES serialisation: 4-byte little-endian length, then the bytes."""
    out, pos = [], 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise BadRequest("binary BYTES tensor is truncated")
        (n,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if pos + n > len(raw):
            raise BadRequest("binary BYTES tensor is truncated")
        out.append(raw[pos:pos + n])
        pos += n
    return out


def _bytes_element(value) -> bytes:
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        return b64decode(value["b64"])
    if isinstance(value, str):
        return b64decode(value)
    raise ImageError("a BYTES element must be a base64 string or {\"b64\": ...}")


def _flatten(data):
    while isinstance(data, list) and data and isinstance(data[0], list):
        data = [x for row in data for x in row]
    return data


def _uint8_values(data) -> np.ndarray:
    """JSON integers, flat or nested, in one numpy conversion (no per-item Python loop)."""
    try:
        array = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        raise BadRequest("UINT8 data must be a flat or evenly nested list of integers") from None
    if array.size and (array.dtype.kind not in "iu"):
        raise BadRequest("UINT8 data must be integers")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise BadRequest("UINT8 data must lie in 0..255")
    return array.ravel()


def _items(tensor: dict, tail: bytes, spec, max_pixels: int) -> list:
    datatype, shape = tensor.get("datatype"), tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape) or not shape:
        raise BadRequest("input shape must be a list of non-negative integers")
    size = (tensor.get("parameters") or {}).get("binary_data_size")
    raw = None
    if size is not None:
        if not isinstance(size, int) or size < 0 or size > len(tail):
            raise BadRequest("binary_data_size is larger than the binary body")
        raw = tail[:size]
    elif "data" not in tensor:
        raise BadRequest("input has neither data nor binary_data_size")
    n = shape[0]
    inference.check_count(n)
    if datatype == "UINT8":
        if list(shape[1:]) not in (list(spec.shape), list(spec.shape[:2]) if spec.channels == 1 else None):
            raise BadRequest(f"UINT8 input shape {shape} does not match [N,{','.join(map(str, spec.shape))}]")
        array = np.frombuffer(raw, np.uint8) if raw is not None else _uint8_values(tensor["data"])
        if array.size != math.prod(shape):
            raise BadRequest(f"input has {array.size} values, shape {shape} needs {math.prod(shape)}")
        return list(array.astype(np.uint8).reshape((n, *spec.shape)))
    if datatype == "BYTES":
        if math.prod(shape) != n:
            raise BadRequest(f"BYTES input shape must be [N] or [N,1], got {shape}")
        elements = _split_bytes(raw) if raw is not None else _flatten(tensor["data"])
        if not isinstance(elements, list) or len(elements) != n:
            raise BadRequest(f"BYTES input has {len(elements) if isinstance(elements, list) else 0} "
                             f"elements, shape says {n}")
        return inference.decode_each(elements, lambda e: decode_image(
            e if isinstance(e, bytes) else _bytes_element(e), spec, max_pixels))
    raise BadRequest(f"input datatype must be UINT8 or BYTES, got {datatype!r}")


def _requested_output(body: dict, output_name: str, n_labels: int) -> tuple[int, bool]:
    params = body.get("parameters") or {}
    classification = params.get("classification", 0)
    binary = bool(params.get("binary_data_output", False))
    outputs = body.get("outputs") or []
    if not isinstance(outputs, list) or len(outputs) > 1:
        raise BadRequest(f"the model has one output, {output_name!r}")
    for out in outputs:
        if not isinstance(out, dict) or out.get("name") != output_name:
            raise BadRequest(f"unknown output; the model has one output, {output_name!r}")
        out_params = out.get("parameters") or {}
        classification = out_params.get("classification", classification)
        binary = bool(out_params.get("binary_data", binary))
    if not isinstance(classification, int) or isinstance(classification, bool) or classification < 0:
        raise BadRequest("classification must be a non-negative integer")
    return min(classification, n_labels), binary


@bp.post("/v2/models/<name>/infer")
@bp.post("/v2/models/<name>/versions/<int:version>/infer")
def infer(name: str, version: int | None = None):
    body, tail = inference.read_json(allow_binary=True)
    route = inference.choose(name, version, key=inference.request_key(body))
    lv = route.version
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or len(body["inputs"]) != 1:
        raise BadRequest("the body must be an object whose \"inputs\" holds exactly one tensor")
    tensor = body["inputs"][0]
    if not isinstance(tensor, dict):
        raise BadRequest("an input tensor must be an object")
    _, output_name = _io_names(lv)
    labels = lv.info.labels
    k, binary = _requested_output(body, output_name, len(labels))
    timeout_us = (body.get("parameters") or {}).get("timeout")
    if timeout_us is not None and (not isinstance(timeout_us, (int, float)) or timeout_us <= 0):
        raise BadRequest("timeout must be a positive number of microseconds")
    asked = confidence.requested((body.get("parameters") or {}).get(confidence.PARAMETER),
                                 f"parameters.{confidence.PARAMETER}")
    asked_energy = energy.requested((body.get("parameters") or {}).get(energy.PARAMETER),
                                    f"parameters.{energy.PARAMETER}")
    items = _items(tensor, tail, lv.info.input, inference.config().max_image_pixels)
    until = inference.deadline(None if timeout_us is None else timeout_us / 1e6)
    results = inference.run_route(route, items, until)
    errors = {str(i): r.message for i, r in enumerate(results) if isinstance(r, ApiError)}
    probs = np.stack([np.full(len(labels), np.nan, np.float32) if isinstance(r, ApiError) else r
                      for r in results]).astype(np.float32)
    if k:
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        values = [[f"{probs[i, j]:f}:{j}:{labels[j]}" if str(i) not in errors else "nan:-1:error"
                   for j in order[i]] for i in range(len(results))]
        out = {"name": output_name, "datatype": "BYTES", "shape": [len(results), k]}
        flat = [s.encode() for row in values for s in row]
        payload = b"".join(struct.pack("<I", len(s)) + s for s in flat)
        data = [s.decode() for s in flat]
    else:
        out = {"name": output_name, "datatype": "FP32", "shape": list(probs.shape)}
        payload = probs.astype("<f4").tobytes()
        data = probs.ravel().tolist()  # Python floats, as float(x) of each
    response_body = {"model_name": name, "model_version": str(lv.version), "outputs": [out]}
    if "id" in body:
        response_body["id"] = body["id"]
    limit = confidence.threshold(lv, asked, inference.config().min_confidence)
    not_sure = confidence.not_sure(results, limit)
    confidence.count(lv, len(not_sure))
    unfamiliar = energy.unfamiliar(results, energy.threshold(lv, asked_energy, inference.config().max_energy))
    energy.count(lv, len(unfamiliar))
    if errors or not_sure or unfamiliar:
        response_body["parameters"] = {
            **({"errors": json.dumps(errors)} if errors else {}),
            **({"not_sure": json.dumps(not_sure)} if not_sure else {}),
            **({"unfamiliar": json.dumps(unfamiliar)} if unfamiliar else {})}
    if not binary:
        out["data"] = data
        finite = bool(k) or bool(np.isfinite(probs).all())  # NaN rows: failed items
        return inference.model_headers(inference.json_response(response_body, finite), lv)
    out["parameters"] = {"binary_data_size": len(payload)}
    header = json.dumps(response_body).encode()
    response = Response(header + payload, mimetype="application/octet-stream")
    response.headers["Inference-Header-Content-Length"] = str(len(header))
    return inference.model_headers(response, lv)
