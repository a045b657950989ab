"""Image-classification inference service: ``service:create_app()``.

Importing this package is cheap: TensorFlow and LiteRT are imported only
when a worker loads a model (see ``registry`` and ``backends``).
"""
from __future__ import annotations

from flask import Flask

from .capture import Capture
from .config import ServiceConfig
from .drift import DriftMonitor
from .errors import register_error_handlers
from .logs import configure_logging, init_request_logging
from .metrics import Metrics
from .registry import ModelRegistry
from .shadow import Shadow


def create_app(config: dict | None = None) -> Flask:
    """Defaults, then ``SERVICE_*`` environment variables, then ``config``."""
    settings = ServiceConfig.load(config)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    app.json.sort_keys = False
    configure_logging(settings.log_level)

    metrics = Metrics(settings.metrics_flush_s)
    app.extensions["service_config"] = settings
    app.extensions["service_metrics"] = metrics
    # Created here, started in the worker (gunicorn post_worker_init or first request).
    app.extensions["model_registry"] = ModelRegistry(settings, metrics)
    app.extensions["drift"] = DriftMonitor(metrics, settings.drift_window, settings.workers)
    app.extensions["shadow"] = Shadow(metrics, settings.shadow_max_pending,
                                      settings.request_timeout_ms / 1000.0)
    app.extensions["capture"] = Capture(settings.capture_dir, settings.capture_rate, settings.capture_max_mb,
                                        settings.min_confidence, metrics)

    from . import routes_feedback, routes_ops, routes_predict, routes_tfserving, routes_v2
    for module in (routes_tfserving, routes_v2, routes_predict, routes_ops, routes_feedback):
        app.register_blueprint(module.bp)
    register_error_handlers(app)
    init_request_logging(app, metrics)
    return app
