"""API errors: every failure leaves the service as JSON {"error": ...}.

The status codes follow the error table in docs/service.md. Raise an ``ApiError``
subclass anywhere in a request; the handlers registered here turn it (and
Flask's own 404/405/413 and anything unexpected) into JSON.
"""
from __future__ import annotations

import logging

from flask import Flask, g, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger("service")


class ApiError(Exception):
    status = 500

    def __init__(self, message: str, headers: dict | None = None):
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ApiError):          # malformed JSON, shape, dtype, image
    status = 400


class NotFound(ApiError):            # unknown model or version
    status = 404


class Unauthorized(ApiError):
    status = 401


class PayloadTooLarge(ApiError):
    status = 413


class UnsupportedMediaType(ApiError):
    status = 415


class QueueFull(ApiError):
    status = 429


class Unavailable(ApiError):         # not ready, loading, draining
    status = 503

    def __init__(self, message: str, retry_after_s: int = 5):
        super().__init__(message, {"Retry-After": str(retry_after_s)})


class DeadlineExceeded(ApiError):
    status = 504


def error_response(status: int, message: str, headers: dict | None = None):
    body = {"error": message}
    request_id = g.get("request_id")
    if request_id:
        body["request_id"] = request_id
    response = jsonify(body)
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.message, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        # Flask's own 404/405/413...: keep headers such as Allow, drop the HTML.
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        message = exc.description or exc.name
        if exc.code == 413:
            message = "request body is larger than the configured limit"
        return error_response(exc.code or 500, message, headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        # The traceback goes to the log, never to the client.
        log.exception("unhandled error", extra={"event": "error"})
        return error_response(500, "internal server error")
