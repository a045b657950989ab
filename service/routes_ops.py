"""Operations: ``GET /metrics`` and ``POST /admin/reload``.

Admin routes exist only when ``SERVICE_ADMIN_TOKEN`` is set (404 otherwise)
and want ``Authorization: Bearer <token>`` (401 otherwise).
"""
from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, jsonify, request

from . import inference
from .errors import NotFound, Unauthorized
from .metrics import CONTENT_TYPE

bp = Blueprint("ops", __name__)


@bp.get("/metrics")
def metrics():
    inference.registry()  # starts loading when no gunicorn worker did
    return Response(current_app.extensions["service_metrics"].render(), content_type=CONTENT_TYPE)


def _check_admin() -> None:
    token = inference.config().admin_token
    if not token:
        raise NotFound("not found")
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Unauthorized("a valid bearer token is required", {"WWW-Authenticate": "Bearer"})


@bp.post("/admin/reload")
def reload():
    _check_admin()
    served = inference.registry().sync(force=True)
    return jsonify({"models": {name: [str(v) for v in versions] for name, versions in served.items()}})
