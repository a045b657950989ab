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
- Keep-alive: the request thread that answered a kept-alive connection
  waits a moment for that client's next request and serves it itself,
  instead of handing the connection back to the poller thread and from
  there to a pool thread again (``KEEPALIVE_LINGER_S``).
- Garbage collection: start-up objects frozen, a larger young generation
  (``GC_YOUNG_THRESHOLD``).
- Accept: with several workers, a worker that already holds connections
  waits a little before accepting a new one (``ACCEPT_DEFER_PER_CONN_S``),
  so the worker with fewer connections takes it.
"""
from __future__ import annotations

import gc
import logging
import select
import sys
import time

from gunicorn.workers.gthread import ThreadWorker

log = logging.getLogger("service")
# The poller thread, the request threads and the batcher thread hand each
# request to one another several times; a thread that wants the GIL waits up
# to this long for it (Python's default is 5 ms). 0.5 ms gave 1.3-2x req/s
# at 32 clients on 2 busy cores (benchmarks/serve_load.py).
GIL_SWITCH_INTERVAL_S = 0.0005
# How long a request thread waits on its kept-alive connection for the next
# request before handing it back to the poller. Each hand-back costs the
# poller a re-register, a pipe wake-up and a thread-pool hand-off, which on
# 2 busy cores made the poller thread hold the GIL about as long as all
# request threads together (py-spy --gil at 32 clients). A thread waits
# without the GIL; connections beyond the thread count wait at most this
# long for one.
KEEPALIVE_LINGER_S = 0.005
# A pixel-array JSON body allocates about 800 lists. With Python's default
# young-generation threshold (700 allocations) each such request paid a
# collection pass, and the older generations' passes, which follow from
# those, walked every object the app and its models made at start. Once the models are loaded, gc.freeze()
# leaves those start-up objects out of all later passes, and this threshold
# runs a young pass about every 25 such requests. At 32 clients on 2 cores:
# v1 pixel arrays from about 1,200 to 800 us of worker CPU per request.
GC_YOUNG_THRESHOLD = 20_000
# Every worker's poller wakes for a new connection and the first to accept()
# gets it, so one worker could end up with nearly all of wrk's 32
# connections and the other idle: batches of 16 on one core, half the req/s
# (benchmarks/serve_load.py, V2 binary at c=32: 596 and 627 req/s in two
# runs, against about 1,250 when the connections were spread). Deferring by
# the number of connections held lets the less loaded worker win the race.
# Capped: a lone busy worker still accepts within a few milliseconds.
ACCEPT_DEFER_PER_CONN_S = 0.0001
ACCEPT_DEFER_MAX_S = 0.003


class ServiceWorker(ThreadWorker):
    def run(self):
        registry = self.wsgi.extensions["model_registry"]
        registry.start()
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        while self.alive and not registry.wait_scanned(1.0):
            self.notify()  # loading may outlast the arbiter's timeout
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        log.info("worker accepting", extra={"event": "worker_accepting", "ready": registry.ready()})
        super().run()

    def handle_exit(self, sig, frame):
        self.wsgi.extensions["model_registry"].drain()
        super().handle_exit(sig, frame)

    def handle(self, conn):
        keepalive = super().handle(conn)
        while keepalive is True and self.alive and self._next_request_waiting(conn):
            keepalive = super().handle(conn)
        return keepalive

    @staticmethod
    def _next_request_waiting(conn) -> bool:
        if conn.parser.unreader.buf.getvalue():  # read ahead with the last body
            return True
        try:
            readable, _, _ = select.select([conn.sock], [], [], KEEPALIVE_LINGER_S)
        except (OSError, ValueError):
            return False
        return bool(readable)

    def accept(self, listener):
        if self.cfg.workers > 1 and self.nr_conns:
            time.sleep(min(ACCEPT_DEFER_MAX_S, ACCEPT_DEFER_PER_CONN_S * self.nr_conns))
        super().accept(listener)

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
