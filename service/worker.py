"""The gunicorn worker: gthread, plus the model lifecycle around accepting.

``gunicorn.conf.py`` names it as ``worker_class``. Two changes to the stock
threaded worker (gunicorn 27, ``workers/gthread.py``):

- Start: the worker builds the app after fork (no TensorFlow in the
  master), then loads every wanted model version *before* its accept loop
  starts, heartbeating the arbiter meanwhile. Connections that arrive in
  that time wait in the listen backlog (or go to a worker that is ready);
  none is answered 503 "loading", so a restarted worker causes no 503 storm.
- Stop (SIGTERM): readiness turns false first; gunicorn then stops
  accepting, answers requests on kept-alive connections with
  ``Connection: close`` and waits up to ``graceful_timeout`` for open
  connections. Here the connections already in the listen backlog are
  accepted and served too, and the listener is closed at once, so a client
  connecting later is refused instead of being reset at exit.
"""
from __future__ import annotations

import logging
import select
import sys

from gunicorn.workers.gthread import ThreadWorker

log = logging.getLogger("service")
# The poller thread, the request threads and the batcher thread hand each
# request to one another several times; a thread that wants the GIL waits up
# to this long for it (Python's default is 5 ms). 0.5 ms gave 1.3-2x req/s
# at 32 clients on 2 busy cores (benchmarks/serve_load.py).
GIL_SWITCH_INTERVAL_S = 0.0005


class ServiceWorker(ThreadWorker):
    def run(self):
        registry = self.wsgi.extensions["model_registry"]
        registry.start()
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        while self.alive and not registry.wait_scanned(1.0):
            self.notify()  # loading may outlast the arbiter's timeout
        log.info("worker accepting", extra={"event": "worker_accepting", "ready": registry.ready()})
        super().run()

    def handle_exit(self, sig, frame):
        self.wsgi.extensions["model_registry"].drain()
        super().handle_exit(sig, frame)

    def set_accept_enabled(self, enabled):
        stopping = not enabled and not self.alive
        if stopping and self._accepting:
            for listener in self.sockets:
                self._accept_backlog(listener)
        super().set_accept_enabled(enabled)
        if stopping:
            for listener in self.sockets:
                listener.close()

    def _accept_backlog(self, listener) -> None:
        # Bounded: a client that keeps connecting cannot hold the worker here.
        for _ in range(self.worker_connections):
            readable, _, _ = select.select([listener], [], [], 0)
            if not readable:
                return
            self.accept(listener)
