"""What service/worker.py relies on in the installed gunicorn, beyond its public hooks.

gunicorn documents server hooks (``post_worker_init``, used for loading) but not the
threaded worker's methods and attributes. ``ServiceWorker`` overrides four of them
and reads two attributes; a gunicorn release may change any of these without notice,
and the requirements pin only its major version. Each test here fails when one of
them changes: the method names and signatures, who calls them, and what they do,
driven on a real ``ServiceWorker`` with real sockets and the real app.
"""
import ast
import inspect
import os
import selectors
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest
from gunicorn import glogging
from gunicorn.config import Config
from gunicorn.workers import base, gthread
from gunicorn.workers.gthread import TConn, ThreadWorker

from service import create_app
from service.worker import OneSend, ServiceWorker, post_worker_init
from support.builders import ROOT

# gthread methods ServiceWorker overrides, with the parameters gunicorn calls them with.
OVERRIDDEN = {"handle_exit": ["self", "sig", "frame"], "handle": ["self", "conn"],
              "handle_request": ["self", "req", "conn"],
              "accept": ["self", "listener"], "set_accept_enabled": ["self", "enabled"]}
# Worker attributes worker.py reads (public names, but not a documented API).
READ = {"nr_conns", "worker_connections", "sockets", "alive", "cfg", "wsgi", "notify"}


def _allowed_private() -> dict:
    """tests/test_structure.py's ALLOWED_PRIVATE, read without importing that test module."""
    tree = ast.parse((ROOT / "tests" / "test_structure.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "ALLOWED_PRIVATE":
            return ast.literal_eval(node.value)
    raise AssertionError("tests/test_structure.py has no ALLOWED_PRIVATE")


def _worker(tmp_path, **settings) -> ServiceWorker:
    cfg = Config()
    cfg.set("threads", 2)
    worker = ServiceWorker(1, os.getpid(), [], None, 30, cfg, glogging.Logger(cfg))
    worker.wsgi = create_app({"model_root": str(tmp_path), "poll_interval_s": 0, **settings})
    worker.poller = selectors.DefaultSelector()
    worker.tpool = ThreadPoolExecutor(2)
    return worker


def _request(path="/v2/health/live", close=False) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: x\r\n" + ("Connection: close\r\n" if close else "") + "\r\n").encode()


def _read_responses(sock, count: int, timeout=10.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while data.count(b"HTTP/1.1 ") < count or not data.endswith(b"}\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_overridden_methods_exist_with_the_same_parameters():
    for name, params in OVERRIDDEN.items():
        assert list(inspect.signature(getattr(ThreadWorker, name)).parameters) == params, name
        assert list(inspect.signature(getattr(ServiceWorker, name)).parameters) == params, name
    overrides = {n for n, v in vars(ServiceWorker).items() if callable(v) and hasattr(ThreadWorker, n)}
    assert overrides == set(OVERRIDDEN), "a new override needs its contract here"


def test_service_worker_names_do_not_shadow_gunicorn_attributes(tmp_path):
    worker = ServiceWorker(1, os.getpid(), [], None, 30, Config(), glogging.Logger(Config()))
    ours = {n for n in vars(ServiceWorker) if not n.startswith("__")} - set(OVERRIDDEN)
    gunicorn_names = set(dir(ThreadWorker)) | set(vars(ThreadWorker(1, os.getpid(), [], None, 30, Config(),
                                                                      glogging.Logger(Config()))))
    assert ours & gunicorn_names == set()
    assert READ - {"wsgi"} <= set(dir(worker))      # wsgi: set by load_wsgi, below
    assert isinstance(worker.nr_conns, int) and worker.nr_conns == 0


def test_gunicorn_calls_the_overrides_and_the_hook_where_worker_py_expects():
    init_process = inspect.getsource(base.Worker.init_process)
    # The app exists, then the hook runs, then the accept loop: models load before accepting.
    order = [init_process.index(s) for s in ("self.load_wsgi()", "self.cfg.post_worker_init(self)", "self.run()")]
    assert order == sorted(order)
    assert "self.wsgi = " in inspect.getsource(base.Worker.load_wsgi)
    assert "signal.signal(signal.SIGTERM, self.handle_exit)" in inspect.getsource(base.Worker.init_signals)
    assert "self.tpool.submit(self.handle, conn)" in inspect.getsource(ThreadWorker.enqueue_req)
    # The response writes to the conn.sock handle_request finds (OneSend stands in there).
    assert "self.handle_request(req, conn)" in inspect.getsource(ThreadWorker.handle)
    assert "wsgi.create(req, conn.sock," in inspect.getsource(ThreadWorker.handle_request)
    assert "self.nr_conns += 1" in inspect.getsource(ThreadWorker.accept)
    # ServiceWorker.listening mirrors whether the listeners are registered: gthread
    # registers them, and sets its own flag, only in set_accept_enabled.
    module, toggle = inspect.getsource(gthread), inspect.getsource(ThreadWorker.set_accept_enabled)
    for code in ("self._accepting = ", "self.poller.register(listener", "self.poller.unregister(listener"):
        assert module.count(code) == toggle.count(code) + (code == "self._accepting = "), code  # + __init__
    assert "self.set_accept_enabled(" in inspect.getsource(ThreadWorker.run)
    assert inspect.signature(post_worker_init).parameters.keys() == {"worker"}


def test_worker_py_reads_no_private_gunicorn_attribute_beyond_the_structure_allowance():
    """The private names worker.py reads on ``self`` that it does not define itself come
    from gunicorn; ALLOWED_PRIVATE lists exactly those, and this file covers them."""
    tree = ast.parse((ROOT / "service" / "worker.py").read_text())
    defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    defined |= {t.attr for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets
                if isinstance(t, ast.Attribute)}
    read = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr.startswith("_")
            and not n.attr.startswith("__") and n.attr not in defined}
    assert read == _allowed_private().get("service/worker.py", set())


def test_handle_returns_true_on_keep_alive_and_serves_a_pipelined_request_itself(tmp_path):
    """The read-ahead is in ``conn.parser.unreader`` (take_buffered/unread), and handle()
    answers True for a kept-alive connection: ServiceWorker loops on exactly that."""
    worker = _worker(tmp_path)
    server, client = socket.socketpair()
    try:
        client.sendall(_request() + _request())          # two requests in one segment
        conn = TConn(worker.cfg, server, ("127.0.0.1", 1), ("127.0.0.1", 2))
        assert worker.handle(conn) is True
        assert conn.parser.unreader.take_buffered() == b""  # the second was served, not left
        assert _read_responses(client, 2).count(b"HTTP/1.1 200") == 2
        client.sendall(_request(close=True))
        assert worker.handle(conn) is False
    finally:
        worker.tpool.shutdown()
        client.close()
        server.close()


def test_unreader_gives_back_what_it_read_ahead(tmp_path):
    worker = _worker(tmp_path)
    server, client = socket.socketpair()
    try:
        client.sendall(_request() + b"GET /next")
        conn = TConn(worker.cfg, server, ("127.0.0.1", 1), ("127.0.0.1", 2))
        conn.init()
        next(conn.parser)
        ahead = conn.parser.unreader.take_buffered()
        assert ahead == b"GET /next" and conn.parser.unreader.take_buffered() == b""
        conn.parser.unreader.unread(ahead)
        assert conn.parser.unreader.take_buffered() == ahead
    finally:
        worker.tpool.shutdown()
        client.close()
        server.close()


@pytest.mark.parametrize("alive", [True, False])
def test_accept_toggle_registers_the_listener_and_a_stopping_worker_serves_its_backlog(tmp_path, alive):
    worker = _worker(tmp_path)
    worker.method_queue.init()
    listener = socket.create_server(("127.0.0.1", 0))
    worker.sockets = [listener]
    client = socket.create_connection(listener.getsockname())
    try:
        worker.set_accept_enabled(True)
        assert worker.listening and worker.poller.get_key(listener).data == worker.accept
        client.sendall(_request(close=True))
        worker.alive = alive
        worker.set_accept_enabled(False)
        assert not worker.listening and listener not in {k.fileobj for k in worker.poller.get_map().values()}
        if alive:   # only out of connections: nothing accepted, the listener stays open
            assert worker.nr_conns == 0 and listener.fileno() != -1
        else:       # stopping: the waiting connection is accepted and answered, the listener closed
            assert worker.nr_conns == 1 and listener.fileno() == -1
            assert b"HTTP/1.1 200" in _read_responses(client, 1)
    finally:
        worker.tpool.shutdown()
        worker.method_queue.close()
        client.close()
        listener.close()


class _CountingSocket(socket.socket):
    """A real socket that counts its sendall calls."""
    sends = 0

    def sendall(self, data, *args):
        self.sends += 1
        return super().sendall(data, *args)


def test_a_response_leaves_in_one_send_and_the_connection_keeps_its_socket(tmp_path):
    worker = _worker(tmp_path)
    raw, client = socket.socketpair()
    server = _CountingSocket(raw.family, raw.type, fileno=raw.detach())
    try:
        conn = TConn(worker.cfg, server, ("127.0.0.1", 1), ("127.0.0.1", 2))
        client.sendall(_request(close=True))
        assert worker.handle(conn) is False
        assert conn.sock is server
        response = _read_responses(client, 1)
        assert response.startswith(b"HTTP/1.1 200") and response.endswith(b'{"live":true}\n')
        assert server.sends == 1   # gunicorn's head and body writes, as one
    finally:
        worker.tpool.shutdown()
        client.close()
        server.close()


def test_one_send_keeps_the_order_of_everything_written():
    a, b = socket.socketpair()
    try:
        held = OneSend(a)
        held.sendall(b"head;")
        assert held.held == b"head;"
        held.sendall(b"body;")           # with the head, in one send
        held.sendall(b"more;")           # then straight through
        held.flush()
        head_only = OneSend(a)
        head_only.sendall(b"head2;")
        head_only.fileno()               # any other use sends what is held first
        assert head_only.held == b"" and head_only.passing
        b.settimeout(5)
        data = b""
        while len(data) < len(b"head;body;more;head2;"):
            data += b.recv(100)
        assert data == b"head;body;more;head2;"
    finally:
        a.close()
        b.close()
