"""gunicorn settings for ``gunicorn -c gunicorn.conf.py "service:create_app()"``.

Every value that varies comes from ``ServiceConfig`` (service/config.py:
``SERVICE_*`` variables, ``PORT``), the object the app reads too, so workers
x model threads ~ cores is computed in one place; what is fixed here is a
design decision, with its reason. The master imports only light modules;
each worker builds the app after fork and loads its models before it
accepts a connection (the ``post_worker_init`` hook of service/worker.py;
never in the master: TensorFlow in a forked child can hang,
tensorflow#57877).
"""
import glob
import os
import shutil
import tempfile

# Before anything imports prometheus_client: it picks its multiprocess mode
# at import. A fresh directory per server start (kept across SIGHUP, which
# re-reads this file); an operator's own directory is emptied of old values.
METRICS_PREFIX = "service-metrics-"
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix=METRICS_PREFIX)

from prometheus_client import multiprocess  # noqa: E402

from service.config import ServiceConfig  # noqa: E402
from service.logs import JsonFormatter  # noqa: E402,F401  (referenced by logconfig_dict)
from service.worker import post_worker_init, worker_exit  # noqa: E402,F401  (server hooks: found by name)

_cfg = ServiceConfig.load()

bind = _cfg.bind
workers = _cfg.workers
worker_class = "service.worker.ServiceWorker"  # gthread + drain the backlog at stop, keep-alive linger, accept spread
threads = _cfg.threads
preload_app = False               # the app (and any TF) is created in each worker
timeout = _cfg.worker_timeout_s
graceful_timeout = _cfg.graceful_timeout_s
keepalive = _cfg.keepalive_s
# No request-count recycling: RSS grows about 1% over 20,000 requests, and a
# recycled worker used to answer 503 while it loaded (issue 12). TF keeps
# about 6.5 MB per hot reload; SIGHUP replaces the workers without a 503
# (each new one loads before it accepts).
max_requests = 0
control_socket_disable = True    # not used; several instances would share its path
accesslog = None                  # the app logs each request as JSON with its id
logger_class = "service.logs.GunicornLogger"  # and gunicorn builds no access line
errorlog = "-"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "service.logs.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json",
                             "stream": "ext://sys.stderr"}},
    "loggers": {"gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False}},
}


def on_starting(server):
    for stale in glob.glob(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "*.db")):
        os.remove(stale)


def child_exit(server, worker):
    """A worker's live gauges go with it; its counters stay in the sums."""
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    if os.path.basename(path).startswith(METRICS_PREFIX):
        shutil.rmtree(path, ignore_errors=True)
