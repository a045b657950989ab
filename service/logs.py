"""Structured JSON logs, one object per line, with the request id.

An incoming ``X-Request-ID`` is honoured (when it is short and printable),
otherwise one is made; either way it is echoed in the response header, put in
error bodies and in every log line written while the request runs.
"""
from __future__ import annotations

import json
import logging
import os
import time
import uuid

from flask import Flask, g, has_request_context, request
from gunicorn import glogging

from .metrics import Metrics

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


# One encoder for every line: json.dumps(entry, default=str) builds a new one per call.
_ENCODE = json.JSONEncoder(default=str).encode
_LEVELS: dict[str, str] = {}


class JsonFormatter(logging.Formatter):
    # (second, its text): the timestamp up to the second, kept while the second lasts;
    # one tuple, so a thread never pairs one second with another's text.
    _second: tuple = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        cached = self._second
        if cached[0] != second:
            cached = self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        level = _LEVELS.get(record.levelname)
        if level is None:
            level = _LEVELS[record.levelname] = record.levelname.lower()
        fields = record.__dict__
        entry = {
            "ts": f"{cached[1]}.{int(record.msecs):03d}Z",
            "level": level,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if "request_id" not in fields and has_request_context():
            request_id = g.get("request_id")
            if request_id:
                entry["request_id"] = request_id
        for key, value in fields.items():
            if key not in _STANDARD and key[0] != "_":
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        # the standard encoder, not orjson: a few microseconds more, and the lines keep the
        # layout log pipelines may already match ("key": "value").
        return _ENCODE(entry)


class LineHandler(logging.Handler):
    """Each record is one write() of one line to stderr, without the handler lock.

    Every request logs a line from its own thread; with a lock, threads
    queued behind it and each release woke the next one, about a quarter of
    a worker's GIL time at 32 clients on 2 cores (py-spy --gil). A single
    write() of a line is not interleaved with another thread's."""

    def createLock(self):
        self.lock = None  # Handler.acquire/release do nothing without one

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = memoryview((self.format(record) + "\n").encode())
            while line:
                line = line[os.write(2, line):]
        except Exception:
            self.handleError(record)


class GunicornLogger(glogging.Logger):
    """gunicorn's logger without its access log (``logger_class``): the app logs
    each request with its id. With ``logconfig_dict`` set, gunicorn would
    otherwise build an access line per request that no handler prints."""

    def _compute_access_log_enabled(self):
        return False


def configure_logging(level: str) -> None:
    logger = logging.getLogger("service")
    logger.setLevel(level.upper())
    if not any(isinstance(h, LineHandler) for h in logger.handlers):
        handler = LineHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.propagate = False


def client_request_id() -> str | None:
    """The client's own ``X-Request-ID`` when it is usable, else None."""
    value = request.headers.get("X-Request-ID", "")
    if 0 < len(value) <= 128 and value.isprintable() and value.isascii():
        return value
    return None


def _incoming_id() -> str:
    return client_request_id() or uuid.uuid4().hex


def init_request_logging(app: Flask, metrics: Metrics) -> None:
    log = logging.getLogger("service.access")

    @app.before_request
    def _start():
        g.request_id = _incoming_id()
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response):
        seconds = time.perf_counter() - g.get("started", time.perf_counter())
        # Each use of flask.request or g is a context lookup: read them once.
        url_rule, method, headers = request.url_rule, request.method, response.headers
        rule = url_rule.rule if url_rule else "<unmatched>"
        request_id = g.get("request_id", "")
        headers["X-Request-ID"] = request_id
        route = g.get("route")
        label = route.label if route is not None else ""
        if route is not None and "X-Model-Version" not in headers:
            # An error after the version was chosen (a bad image, a deadline) still
            # names it, so per-version error rates count it against that version.
            headers["X-Model-Name"] = route.version.name
            headers["X-Model-Version"] = str(route.version.version)
        if label:
            headers["X-Model-Label"] = label
        # Only a model that answered names the labels: names taken from the
        # URL would let any client create new series.
        model = headers.get("X-Model-Name", "")
        version = headers.get("X-Model-Version", "")
        status = response.status_code
        metrics.request(model, version, rule, method, status, seconds)
        if log.isEnabledFor(logging.INFO):
            # request_id first: where the formatter would put it (it need not look it up).
            fields = {"request_id": request_id} if request_id else {}
            fields.update(event="request", method=method, path=request.path, route=rule,
                          status=status, duration_ms=round(seconds * 1000, 2))
            if version:
                fields["model"] = model
                fields["version"] = version
            if label:
                fields["label"] = label
            # makeRecord + handle is log.info without findCaller's walk up the stack
            # (the JSON line has no source location).
            log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, "request", (), None, extra=fields))
        return response
