"""gunicorn settings for ``gunicorn -c gunicorn.conf.py "service:create_app()"``.

Values come from the same ``SERVICE_*`` variables as the app (service.config),
so workers x model threads ~ cores is computed in one place. The master
imports only the light config module; each worker builds the app after fork
and starts loading models in ``post_worker_init`` (never in the master:
TensorFlow in a forked child can hang, tensorflow#57877).
"""
import signal

from service.config import ServiceConfig
from service.logs import JsonFormatter  # noqa: F401  (referenced by logconfig_dict)

_cfg = ServiceConfig.load()

bind = _cfg.bind
workers = _cfg.workers
worker_class = "gthread"          # threads feed the per-worker batcher
threads = _cfg.threads
preload_app = False               # the app (and any TF) is created in each worker
timeout = 60                      # s without heartbeat before a worker is killed
graceful_timeout = 30             # s for in-flight requests after SIGTERM
keepalive = 5
# TF never hands back memory of unloaded models (triton#3825): recycle workers.
max_requests = 5000
max_requests_jitter = 500
control_socket_disable = True    # not used; several instances would share its path
accesslog = None                  # the app logs each request as JSON with its id
errorlog = "-"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "service.logs.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json",
                             "stream": "ext://sys.stderr"}},
    "loggers": {"gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False}},
}


def post_worker_init(worker):
    """Start loading models in this worker; on SIGTERM turn readiness off first."""
    registry = worker.wsgi.extensions["model_registry"]
    registry.start()
    graceful_exit = worker.handle_exit

    def drain_then_exit(sig, frame):
        registry.drain()             # /v2/health/ready -> 503, new inferences -> 503
        graceful_exit(sig, frame)    # stop accepting; in-flight requests finish

    signal.signal(signal.SIGTERM, drain_then_exit)
    signal.siginterrupt(signal.SIGTERM, False)  # as gunicorn set it: do not break active calls
