"""gunicorn settings for ``gunicorn -c gunicorn.conf.py "service:create_app()"``.

Values come from the same ``SERVICE_*`` variables as the app (service.config),
so workers x model threads ~ cores is computed in one place. The master
imports only light modules; each worker builds the app after fork and loads
its models before it accepts a connection (``service.worker``; never in the
master: TensorFlow in a forked child can hang, tensorflow#57877).
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

_cfg = ServiceConfig.load()

bind = _cfg.bind
workers = _cfg.workers
worker_class = "service.worker.ServiceWorker"  # gthread + load before accept + drain the backlog
threads = _cfg.threads
preload_app = False               # the app (and any TF) is created in each worker
timeout = 60                      # s without heartbeat before a worker is killed
graceful_timeout = 30             # s for queued and in-flight requests after SIGTERM
keepalive = 5
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
