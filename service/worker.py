"""The gunicorn worker: gthread, plus the model lifecycle around accepting.

``gunicorn.conf.py`` names ``ServiceWorker`` as ``worker_class`` and
``post_worker_init`` below as its server hook. Changes to the stock threaded
worker (gunicorn 27, ``workers/gthread.py``):

- Start (the public ``post_worker_init`` hook): the worker builds the app
  after fork (no TensorFlow in the master), then loads every wanted model
  version *before* its accept loop starts, heartbeating the arbiter
  meanwhile. Connections that arrive in that time wait in the listen
  backlog (or go to a worker that is ready); none is answered 503
  "loading", so a restarted worker causes no 503 storm.
- Stop (SIGTERM): readiness turns false first; gunicorn then stops
  accepting, answers requests on kept-alive connections with
  ``Connection: close`` and waits up to ``graceful_timeout`` for open
  connections. Here the connections already in the listen backlog are
  accepted and served too, and the listener is closed at once, so a client
  connecting later is refused instead of being reset at exit.
- Keep-alive: the request thread that answered a kept-alive connection
  waits a moment for that client's next request and serves it itself,
  instead of handing the connection back to the poller thread and from
  there to a pool thread again (``keepalive_linger_s``).
- Garbage collection: start-up objects frozen, a larger young generation
  (``gc_young_threshold``).
- One send per response: gunicorn writes a response's head and its body
  with a sendall() each; the head is held back and sent with the body
  (``OneSend``).
- Accept: with several workers, a worker that already holds connections
  waits a little before accepting a new one (``accept_defer_per_conn_s``),
  so the worker with fewer connections takes it.

gunicorn has no public hook for the last five, so ``ServiceWorker``
overrides ``handle_exit``, ``handle``, ``handle_request``, ``accept`` and ``set_accept_enabled``
and reads ``nr_conns`` and ``conn.parser.unreader``:
tests/service/test_service_worker_contract.py checks each against the
installed gunicorn. The settings are ``ServiceConfig`` fields (the app's
``extensions["service_config"]``); the measurements behind their defaults:

- ``gil_switch_interval_s``: the poller thread, the request threads and the
  batching request threads hand each request to one another several times;
  a thread that wants the GIL waits up to this long for it (Python's
  default is 5 ms). 0.5 ms gave 1.3-2x req/s at 32 clients on 2 busy cores
  (benchmarks/serve_load.py).
- ``keepalive_linger_s``: each hand-back to the poller costs a re-register,
  a pipe wake-up and a thread-pool hand-off, which on 2 busy cores made the
  poller thread hold the GIL about as long as all request threads together
  (py-spy --gil at 32 clients). A thread waits without the GIL;
  connections beyond the thread count wait at most this long for one.
- ``gc_young_threshold``: a pixel-array JSON body allocates about 800
  lists. With Python's default young-generation threshold (700
  allocations) each such request paid a collection pass, and the older
  generations' passes, which follow from those, walked every object the
  app and its models made at start. Once the models are loaded,
  gc.freeze() leaves those start-up objects out of all later passes, and
  20,000 runs a young pass about every 25 such requests. At 32 clients on
  2 cores: v1 pixel arrays from about 1,200 to 800 us of worker CPU per
  request.
- ``accept_defer_per_conn_s`` / ``accept_defer_max_s``: every worker's
  poller wakes for a new connection and the first to accept() gets it, so
  one worker could end up with nearly all of wrk's 32 connections and the
  other idle: batches of 16 on one core, half the req/s
  (benchmarks/serve_load.py, V2 binary at c=32: 596 and 627 req/s in two
  runs, against about 1,250 when the connections were spread). Deferring
  by the number of connections held lets the less loaded worker win the
  race; capped, so a lone busy worker still accepts within a few
  milliseconds.
- One send: each send() on loopback runs the receiver's side of TCP in the
  sender's system call and wakes the client; the two sends of a response
  took about a tenth of a lone request's time in the worker (py-spy --idle
  at one connection: gunicorn's ``util.write``). Holding the head back
  costs no system call; TCP_CORK, tried first, costs two per request and
  gave a worse one-connection p50 in its run (about 5 ms against 2.7, on a
  machine busy with other jobs: docs/service.md).
"""
from __future__ import annotations

import gc
import logging
import select
import sys
import time

from gunicorn.workers.gthread import ThreadWorker

log = logging.getLogger("service")


def post_worker_init(worker) -> None:
    """gunicorn server hook, run in each worker after it built the app and
    before its accept loop: load the models first (see the module docstring)."""
    extensions = worker.wsgi.extensions
    settings, registry = extensions["service_config"], extensions["model_registry"]
    registry.start()
    sys.setswitchinterval(settings.gil_switch_interval_s)
    while worker.alive and not registry.wait_scanned(1.0):
        worker.notify()  # loading may outlast the arbiter's timeout
    gc.freeze()
    gc.set_threshold(settings.gc_young_threshold, *gc.get_threshold()[1:])
    log.info("worker accepting", extra={"event": "worker_accepting", "ready": registry.ready()})


def worker_exit(server, worker) -> None:
    """gunicorn server hook, run in a worker as it exits (SIGTERM, max requests, a reload):
    the metric updates still deferred (service/metrics.py) go into the scrape files."""
    app = getattr(worker, "wsgi", None)
    metrics = getattr(app, "extensions", {}).get("service_metrics")
    if metrics is not None:
        metrics.flush()


class OneSend:
    """A socket whose first ``sendall`` (a response's head) is held back and
    sent with the second (its body); any other use sends what is held first,
    so the bytes leave in the order they were written."""

    __slots__ = ("sock", "held", "passing")

    def __init__(self, sock):
        self.sock = sock
        self.held = b""
        self.passing = False  # the head went out: plain pass-through from now on

    def sendall(self, data) -> None:
        if self.passing:
            self.sock.sendall(data)
        elif not self.held:
            self.held = bytes(data)
        else:
            self.passing = True
            self.sock.sendall(self.held + data)
            self.held = b""

    def flush(self) -> None:
        self.passing = True
        if self.held:
            held, self.held = self.held, b""
            self.sock.sendall(held)

    def __getattr__(self, name):
        self.flush()
        return getattr(self.sock, name)


class ServiceWorker(ThreadWorker):
    # Whether the listeners are registered with the poller: follows every
    # set_accept_enabled call, the one place gthread changes that.
    listening = False

    @property
    def settings(self):
        return self.wsgi.extensions["service_config"]

    def handle_exit(self, sig, frame):
        self.wsgi.extensions["model_registry"].drain()
        super().handle_exit(sig, frame)

    def handle(self, conn):
        keepalive = super().handle(conn)
        while keepalive is True and self.alive and self._next_request_waiting(conn):
            keepalive = super().handle(conn)
        return keepalive

    def handle_request(self, req, conn):
        sock = conn.sock
        conn.sock = one_send = OneSend(sock)  # what gunicorn's response writes to
        try:
            return super().handle_request(req, conn)
        finally:
            conn.sock = sock
            try:
                one_send.flush()  # a response without a body: its head
            except OSError:
                pass  # the connection is gone; gunicorn has seen or will see why

    def _next_request_waiting(self, conn) -> bool:
        unreader = conn.parser.unreader
        ahead = unreader.take_buffered()  # read ahead with the last body
        if ahead:
            unreader.unread(ahead)
            return True
        try:
            readable, _, _ = select.select([conn.sock], [], [], self.settings.keepalive_linger_s)
        except (OSError, ValueError):
            return False
        return bool(readable)

    def accept(self, listener):
        if self.cfg.workers > 1 and self.nr_conns:
            settings = self.settings
            time.sleep(min(settings.accept_defer_max_s, settings.accept_defer_per_conn_s * self.nr_conns))
        super().accept(listener)

    def set_accept_enabled(self, enabled):
        stopping = not enabled and not self.alive
        if stopping and self.listening:
            for listener in self.sockets:
                self._accept_backlog(listener)
        super().set_accept_enabled(enabled)
        self.listening = enabled
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
