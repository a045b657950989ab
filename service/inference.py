"""Shared request plumbing: body parsing, model lookup and routing, running a batch.

``choose`` picks the version a predict request runs on: the version it pins, the
version of the label it pins, or (pinning nothing) the registry's split between
stable and canary, keyed by the client's request id so that one client stays on
one version.

Items are decoded one by one; an item that fails becomes an ``ApiError`` in
its slot while the others still run (one bad image fails only itself). When
every item failed, the request as a whole is a 400.
"""
from __future__ import annotations

import time

import numpy as np
import orjson
from flask import current_app, g, jsonify, request

from . import energy
from .config import ServiceConfig
from .errors import ApiError, BadRequest, UnsupportedMediaType
from .logs import client_request_id
from .registry import LoadedVersion, ModelRegistry, Route


def registry() -> ModelRegistry:
    reg = current_app.extensions["model_registry"]
    reg.start()  # no-op once started (gunicorn starts it in post_worker_init)
    return reg


def config() -> ServiceConfig:
    return current_app.extensions["service_config"]


def request_key(body: object = None) -> str | None:
    """What fixes a request's side of the split: the client's ``X-Request-ID``, else
    the V2 body's ``id``; None (a random draw) when the client sent neither."""
    key = client_request_id()
    if key is None and isinstance(body, dict) and isinstance(body.get("id"), str) and body["id"]:
        key = body["id"]
    return key


def choose(name: str, version: int | None = None, label: str | None = None,
           key: str | None = None) -> Route:
    """The route of a predict request; remembered so every response names its version."""
    reg = registry()
    if version is not None:
        route = Route(reg.get(name, version))
    elif label is not None:
        route = Route(reg.get_label(name, label), label)
    else:
        route = reg.route(name, key)
    g.route = route
    return route


def deadline(timeout_s: float | None = None) -> float:
    limit = config().request_timeout_ms / 1000.0
    if timeout_s is not None:
        limit = min(limit, timeout_s)
    return time.monotonic() + limit


def read_json(allow_binary: bool = False) -> tuple[object, bytes]:
    """The JSON document of the body, plus any binary tail (KServe binary extension)."""
    encoding = request.headers.get("Content-Encoding", "identity").lower()
    if encoding not in ("", "identity"):
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported")
    header_len = request.headers.get("Inference-Header-Content-Length") if allow_binary else None
    mimetype = request.mimetype
    allowed = ("", "application/json") + (("application/octet-stream",) if header_len else ())
    if mimetype not in allowed:
        raise UnsupportedMediaType(f"Content-Type {mimetype!r} is not supported here; "
                                   "send application/json")
    body = request.get_data(cache=False)
    tail = b""
    if header_len is not None:
        try:
            n = int(header_len)
        except ValueError:
            raise BadRequest("Inference-Header-Content-Length is not an integer") from None
        if not 0 < n <= len(body):
            raise BadRequest("Inference-Header-Content-Length is outside the body")
        body, tail = body[:n], body[n:]
    try:
        # orjson: a third of json.loads' time on a 28x28 pixel array.
        return orjson.loads(body), tail
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit"):  # more than 1024 levels
            raise BadRequest("malformed JSON: nested too deeply") from None
        raise BadRequest(f"malformed JSON: {exc}") from None


def check_count(n: int) -> None:
    if n == 0:
        raise BadRequest("the request holds no inputs")
    limit = config().max_items
    if n > limit:
        raise BadRequest(f"the request holds {n} inputs; the limit is {limit}")


def decode_each(values, decode) -> list:
    """Apply ``decode`` to each value, keeping per-item ApiErrors in place."""
    items = []
    for value in values:
        try:
            items.append(decode(value))
        except ApiError as exc:
            items.append(exc)
    return items


def run(lv: LoadedVersion, items: list, until: float) -> list:
    """Model rows for the good items, the error in place of each bad one; with each item's
    energy beside them (``energy.Answers``)."""
    good = [i for i, item in enumerate(items) if isinstance(item, np.ndarray)]
    if not good:
        errors = [f"item {i}: {item.message}" for i, item in enumerate(items)]
        raise BadRequest(errors[0].split(": ", 1)[1] if len(errors) == 1 else "; ".join(errors))
    out, energies = lv.predict_energy(np.stack([items[i] for i in good]), until)
    current_app.extensions["drift"].observe(lv, out)   # service/drift.py: a ring-buffer append
    results = energy.Answers(items)
    for row, i in zip(out, good):
        results[i] = row
    results.fill_energy(good, energies)
    return results


def run_route(route: Route, items: list, until: float) -> list:
    """``run`` on the route's version; the capture sample may keep the answered items
    (``service/capture.py``, off by default); in shadow mode the canary then gets a copy of
    the good items, compared in the background (``service/shadow.py``)."""
    results = run(route.version, items, until)
    current_app.extensions["capture"].offer(route.version, g.get("request_id", ""), items, results)
    if route.shadow is not None:
        good = [i for i, r in enumerate(results) if not isinstance(r, ApiError)]
        if good:
            current_app.extensions["shadow"].submit(
                route.version, route.shadow, np.stack([items[i] for i in good]),
                np.stack([results[i] for i in good]))
    return results


def json_response(body: dict, finite: bool = True):
    """``jsonify(body)``, written by orjson where every number in it is finite (a
    tenth of the standard encoder's time on a prediction). The same JSON values:
    keys in order, a trailing newline; numbers as the shortest text that reads back
    the same (``1e-5`` where Python writes ``1e-05``), text as UTF-8 where Flask
    escapes non-ASCII. Where a number may be NaN (a failed V2 item), ``jsonify``
    writes it: orjson would write null."""
    if finite:
        try:
            return current_app.response_class(orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS) + b"\n",
                                              mimetype="application/json")
        except TypeError:  # a type only Flask's encoder knows (none in a prediction today)
            pass
    return jsonify(body)


def all_finite(results: list) -> bool:
    """Whether every model row among ``results`` (errors aside) holds finite numbers only."""
    return all(bool(np.isfinite(r).all()) for r in results if not isinstance(r, ApiError))


def model_headers(response, lv: LoadedVersion):
    response.headers["X-Model-Name"] = lv.name
    response.headers["X-Model-Version"] = str(lv.version)
    response.headers["X-Model-Backend"] = lv.backend_name
    return response
