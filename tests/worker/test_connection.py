"""Tier (b): ``Connection`` and ``WorkerServer`` driven by real clients in OS threads.

No monkey-patching: see ``conftest.py`` in this directory for how the gevent
hub (main thread) and the blocking clients (threads) share the process.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import warnings
from wsgiref.validate import WSGIWarning, validator

import gevent
import pytest

from greenserve.worker.connection import WAIT_REQUEST
from tests.conftest import ResponseReader, read_until_close, recv_until, request_bytes
from tests.worker.conftest import (
    PairHTTPConnection,
    join_serving,
    run_in_thread,
    serve_until,
    start_in_thread,
)

BACKENDS = ["h11", "httptools"]


def make_app(calls: list | None = None):
    """A small WSGI app; it records (path, connection id) for each call."""

    def app(environ, start_response):
        path = environ["PATH_INFO"]
        if calls is not None:
            calls.append((path, id(environ.get("greenserve.connection")), environ["REMOTE_PORT"]))
        if path == "/echo":
            body = environ["wsgi.input"].read()
            start_response("200 OK", [("Content-Type", "application/octet-stream")])
            return [body]
        if path == "/lines":
            lines = [line.decode() for line in environ["wsgi.input"]]
            body = json.dumps(lines).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        if path == "/no-read":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"not read"]
        if path == "/stream":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return (b"part%d;" % i for i in range(3))
        if path == "/sleep":
            gevent.sleep(float(environ["QUERY_STRING"] or 0.3))
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"slept"]
        if path == "/empty":
            start_response("204 No Content", [])
            return [b"dropped"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [path.encode()]

    return app


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


# -- keep-alive ---------------------------------------------------------------------


def test_keep_alive_http_client(harness, backend):
    calls: list = []
    h = harness(make_app(calls), http=backend)

    def client():
        conn = h.http()
        try:
            out = []
            for i in range(4):
                conn.request("GET", f"/r{i}")
                response = conn.getresponse()
                out.append((response.status, response.read(), response.getheader("Connection")))
            return out
        finally:
            conn.close()

    results = run_in_thread(client)
    assert results == [(200, f"/r{i}".encode(), None) for i in range(4)]
    assert len({port for _, _, port in calls}) == 1, "all requests on one connection"
    assert h.server.requests == 4


def test_keep_alive_timeout_closes_idle_connection(harness):
    h = harness(make_app(), keep_alive=0.3)

    def client():
        with h.connect() as sock:
            sock.sendall(request_bytes("GET", "/x"))
            ResponseReader(sock).read()
            started = time.monotonic()
            _, closed = read_until_close(sock, 3)
            return closed, time.monotonic() - started

    closed, waited = run_in_thread(client)
    assert closed
    assert 0.2 < waited < 1.5


def test_http10_closes(harness):
    h = harness(make_app())

    def client():
        with h.connect() as sock:
            sock.sendall(b"GET /old HTTP/1.0\r\n\r\n")
            return read_until_close(sock, 3)

    data, closed = run_in_thread(client)
    assert closed
    assert data.endswith(b"/old")
    assert b"Connection: close" in data


def test_options_asterisk_passes_wsgiref_validate(harness, backend):
    """OPTIONS * reaches a validated application: PATH_INFO is '', RAW_URI and REQUEST_URI '*'.

    wsgiref.validate asserts that PATH_INFO is empty or starts with '/' (and
    checks the rest of the environ, start_response and the iterable's close()).
    """
    seen: list[dict] = []
    keys = ("PATH_INFO", "RAW_URI", "REQUEST_URI", "QUERY_STRING")

    def inner(environ, start_response):
        seen.append({key: environ.get(key) for key in keys})
        headers = [("Content-Type", "text/plain"), ("Allow", "GET, HEAD, OPTIONS")]
        start_response("200 OK", headers)
        return [environ["REQUEST_METHOD"].encode()]

    h = harness(validator(inner), http=backend)

    def client():
        with h.connect() as sock:
            sock.sendall(request_bytes("OPTIONS", "*") + request_bytes("GET", "/after?x=1"))
            reader = ResponseReader(sock)
            first = reader.read("OPTIONS")
            second = reader.read()
            return (first.status, first.getheader("Allow"), first.body), (second.status, second.body)

    with warnings.catch_warnings():
        warnings.simplefilter("error", WSGIWarning)  # a validator warning fails the request (500)
        first, second = run_in_thread(client)
    assert first == (200, "GET, HEAD, OPTIONS", b"OPTIONS")
    assert second == (200, b"GET")
    assert seen == [
        {"PATH_INFO": "", "RAW_URI": "*", "REQUEST_URI": "*", "QUERY_STRING": ""},
        {"PATH_INFO": "/after", "RAW_URI": "/after?x=1", "REQUEST_URI": "/after?x=1", "QUERY_STRING": "x=1"},
    ]


# -- pipelining ---------------------------------------------------------------------


def test_pipelining(harness, backend):
    h = harness(make_app(), http=backend)
    pipeline = (
        request_bytes("GET", "/one")
        + request_bytes("POST", "/echo", body=b"posted")
        + request_bytes("POST", "/no-read", body=b"ignored body")
        + request_bytes("GET", "/stream")
        + request_bytes("GET", "/empty")
        + request_bytes("GET", "/last", {"Connection": "close"})
    )

    def client():
        with h.connect() as sock:
            sock.sendall(pipeline)
            reader = ResponseReader(sock)
            bodies = [reader.read().body for _ in range(6)]
            return bodies, reader.at_eof()

    bodies, eof = run_in_thread(client)
    assert bodies == [b"/one", b"posted", b"not read", b"part0;part1;part2;", b"", b"/last"]
    assert eof


def test_pipelined_bytes_split_everywhere(harness):
    """The same pipeline, sent one byte at a time."""
    h = harness(make_app())
    pipeline = request_bytes("POST", "/echo", body=b"abc") + request_bytes(
        "GET", "/two", {"Connection": "close"}
    )

    def client():
        with h.connect() as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for byte in pipeline:
                sock.sendall(bytes([byte]))
            reader = ResponseReader(sock)
            return [reader.read().body for _ in range(2)]

    assert run_in_thread(client) == [b"abc", b"/two"]


# -- chunked ------------------------------------------------------------------------------


def test_chunked_request_body(harness, backend):
    h = harness(make_app(), http=backend)

    def client():
        conn = h.http()
        try:
            conn.request("POST", "/lines", body=iter([b"a\nb", b"b\n", b"c"]), encode_chunked=True)
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    assert run_in_thread(client) == (200, ["a\n", "bb\n", "c"])


def test_chunked_response(harness):
    h = harness(make_app())

    def client():
        with h.connect() as sock:
            sock.sendall(request_bytes("GET", "/stream", {"Connection": "close"}))
            return read_until_close(sock, 3)[0]

    data = run_in_thread(client)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert body == b"6\r\npart0;\r\n6\r\npart1;\r\n6\r\npart2;\r\n0\r\n\r\n"


def test_head_and_204_have_no_body(harness):
    h = harness(make_app())

    def client():
        conn = h.http()
        try:
            conn.request("HEAD", "/stream")
            head = conn.getresponse()
            head_body = head.read()
            conn.request("GET", "/empty")
            empty = conn.getresponse()
            empty_body = empty.read()
            conn.request("GET", "/after")
            return head_body, empty.status, empty_body, conn.getresponse().read()
        finally:
            conn.close()

    assert run_in_thread(client) == (b"", 204, b"", b"/after")


# -- 100-continue ---------------------------------------------------------------------------


def test_expect_continue_when_the_app_reads(harness, backend):
    h = harness(make_app(), http=backend)

    def client():
        with h.connect() as sock:
            sock.sendall(request_bytes("POST", "/echo", {"Expect": "100-continue", "Content-Length": "4"}))
            interim = recv_until(sock, b"\r\n\r\n", 3)
            sock.sendall(b"data")
            response = ResponseReader(sock).read()
            return interim, response.status, response.body

    interim, status, body = run_in_thread(client)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert (status, body) == (200, b"data")


def test_expect_continue_not_sent_when_the_app_does_not_read(harness, backend):
    h = harness(make_app(), http=backend)

    def client():
        with h.connect() as sock:
            sock.sendall(
                request_bytes("POST", "/no-read", {"Expect": "100-continue", "Content-Length": "99999"})
            )
            return read_until_close(sock, 3)

    data, closed = run_in_thread(client)
    assert data.startswith(b"HTTP/1.1 200 ")
    assert b"100 Continue" not in data
    assert data.endswith(b"not read")
    assert closed


def test_expect_continue_with_http_client(harness):
    """http.client sends the body right away; the server must not wait or answer twice."""
    h = harness(make_app())

    def client():
        conn = h.http()
        try:
            conn.request("POST", "/echo", body=b"now", headers={"Expect": "100-continue"})
            response = conn.getresponse()
            first = response.read()
            conn.request("GET", "/next")
            return first, conn.getresponse().read()
        finally:
            conn.close()

    assert run_in_thread(client) == (b"now", b"/next")


# -- timeouts, limits and draining -------------------------------------------------------------


def test_header_timeout_408(harness):
    h = harness(make_app(), header_timeout=0.3)

    def client():
        with h.connect() as sock:
            sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n")
            started = time.monotonic()
            data, closed = read_until_close(sock, 3)
            return data, closed, time.monotonic() - started

    data, closed, waited = run_in_thread(client)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert closed
    assert waited < 1.5


def test_requests_run_concurrently(harness):
    h = harness(make_app())

    def one():
        conn = h.http()
        try:
            conn.request("GET", "/sleep", headers={})
            return conn.getresponse().read()
        finally:
            conn.close()

    started = time.monotonic()
    threads = [start_in_thread(one) for _ in range(20)]
    results = [join_serving(thread, result) for thread, result in threads]
    assert results == [b"slept"] * 20
    assert time.monotonic() - started < 3  # 20 x 0.3 s one after the other would be 6 s


def test_worker_connections_idle_make_room(harness):
    h = harness(make_app(), worker_connections=2, keep_alive=30)

    def client():
        idle = []
        for _ in range(2):
            sock = h.connect()
            sock.sendall(request_bytes("GET", "/idle"))
            ResponseReader(sock).read()
            idle.append(sock)
        try:
            with h.connect() as third:
                third.sendall(request_bytes("GET", "/third", {"Connection": "close"}))
                return read_until_close(third, 3)[0]
        finally:
            for sock in idle:
                sock.close()

    assert run_in_thread(client).endswith(b"/third")


def _served_and_idle(h, calls: list, path: str) -> bool:
    """The connection that served ``path`` waits, idle, for its next request."""
    served = {conn_id for called, conn_id, _ in calls if called == path}
    return any(id(conn) in served and conn.waiting == WAIT_REQUEST for conn in h.server.connections)


def test_graceful_shutdown_drains(harness):
    calls: list = []
    h = harness(make_app(calls))

    def slow():
        conn = h.http()
        try:
            conn.request("GET", "/sleep?1", headers={})
            return conn.getresponse().read()
        finally:
            conn.close()

    def idle():
        with h.connect() as sock:
            sock.sendall(request_bytes("GET", "/idle"))
            ResponseReader(sock).read()
            return read_until_close(sock, 3)

    slow_thread = start_in_thread(slow)
    idle_thread = start_in_thread(idle)
    # Stop while one request is in the application and the other connection is idle.
    assert serve_until(lambda: any(path == "/sleep" for path, _, _ in calls))
    assert serve_until(lambda: _served_and_idle(h, calls, "/idle"))
    finished = h.server.shutdown(5)
    assert finished
    assert join_serving(*slow_thread) == b"slept"
    data, closed = join_serving(*idle_thread)
    assert closed
    assert data == b""


# -- one Connection over a socketpair ------------------------------------------------------------


def test_socketpair_keep_alive_and_chunked(pair):
    p = pair(make_app())

    def client():
        conn = PairHTTPConnection(p.client)
        out = []
        conn.request("GET", "/a")
        out.append(conn.getresponse().read())
        conn.request("POST", "/echo", body=iter([b"chunk", b"ed"]), encode_chunked=True)
        out.append(conn.getresponse().read())
        conn.request("GET", "/stream")
        response = conn.getresponse()
        out.append((response.getheader("Transfer-Encoding"), response.read()))
        return out

    assert run_in_thread(client) == [b"/a", b"chunked", ("chunked", b"part0;part1;part2;")]
    assert p.server.requests == 3


def test_socketpair_pipelining_and_continue(pair):
    p = pair(make_app())

    def client():
        sock = p.client
        sock.settimeout(3)
        sock.sendall(request_bytes("GET", "/first") + request_bytes("GET", "/second"))
        reader = ResponseReader(sock)
        bodies = [reader.read().body, reader.read().body]
        sock.sendall(request_bytes("POST", "/echo", {"Expect": "100-continue", "Content-Length": "2"}))
        interim = reader.file.readline() + reader.file.readline()
        sock.sendall(b"ok")
        bodies.append(reader.read().body)
        return bodies, interim

    bodies, interim = run_in_thread(client)
    assert bodies == [b"/first", b"/second", b"ok"]
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"


class SpuriousReadiness:
    """A gevent socket whose readiness, before each later request, first has no bytes behind it."""

    def __init__(self, sock) -> None:
        self._real = sock
        self._sock = self  # the connection reads through ``_sock`` once the socket is readable
        self.requests_read = 0
        self.spurious = 0

    def recv(self, size: int) -> bytes:
        if self.requests_read and self.spurious < self.requests_read:
            self.spurious += 1
            raise BlockingIOError(11, "Resource temporarily unavailable")
        data = self._real.recv(size)
        self.requests_read += 1
        return data

    def __getattr__(self, name: str):
        return getattr(self._real, name)


def test_socketpair_readiness_without_bytes_loses_no_request(pair):
    p = pair(make_app(), wrap=SpuriousReadiness)

    def client():
        conn = PairHTTPConnection(p.client)
        bodies = []
        for path in ("/a", "/b", "/c"):
            conn.request("GET", path)
            bodies.append(conn.getresponse().read())
        return bodies

    assert run_in_thread(client) == [b"/a", b"/b", b"/c"]
    assert p.sock.spurious == 2  # the second and third requests each met one EAGAIN first


def test_gevent_socket_still_offers_what_the_keep_alive_shortcut_reads(pair):
    """The connection waits with gevent's ``_wait(_read_event)`` and reads ``_sock.recv``.

    They are gevent's private names, read with ``getattr`` (without them every
    keep-alive request makes one more recv(2) and one more wrapper call): this
    says so on every Python in CI instead of leaving a rename to a slower server.
    """
    p = pair(make_app())
    sock = p.conn.sock
    assert callable(sock._wait)
    assert sock._read_event is not None
    assert sock._sock.recv.__self__ is sock._sock
    assert sock._sock.gettimeout() == 0.0  # non-blocking: its EAGAIN is the connection's to handle


def test_socketpair_client_close_ends_the_greenlet(pair):
    p = pair(make_app())

    def client():
        p.client.sendall(request_bytes("GET", "/bye"))
        ResponseReader(p.client).read()
        p.client.shutdown(socket.SHUT_RDWR)

    run_in_thread(client)
    p.conn.greenlet.join(2)
    assert p.conn.greenlet.dead
    assert p.conn not in p.server.connections


def test_no_monkey_patching_in_the_test_process():
    from gevent import monkey

    assert not monkey.is_module_patched("socket")
    assert not monkey.is_module_patched("threading")
    assert socket.socket is not __import__("gevent.socket").socket.socket
    assert http.client.socket.socket is socket.socket


def test_busy_connection_going_idle_makes_room(harness):
    """Pool full of busy keep-alive connections: when one goes idle, a waiting client gets in.

    It must not wait for the idle connection's keep-alive timeout (30 s here).
    """
    calls: list = []
    h = harness(make_app(calls), worker_connections=1, keep_alive=30)

    def busy():
        sock = h.connect()
        sock.sendall(request_bytes("GET", "/sleep", {}))
        body = ResponseReader(sock).read().body
        return sock, body  # kept open: idle keep-alive from now on

    def waiting():
        started = time.monotonic()
        with h.connect(timeout=3) as sock:
            sock.sendall(request_bytes("GET", "/waited", {"Connection": "close"}))
            data, _ = read_until_close(sock, 3)
        return data, time.monotonic() - started

    busy_thread = start_in_thread(busy)
    assert serve_until(lambda: calls)  # the busy request holds the only slot
    waiting_thread = start_in_thread(waiting)
    sock, body = join_serving(*busy_thread)
    try:
        assert body == b"slept"
        data, waited = join_serving(*waiting_thread)
    finally:
        sock.close()
    assert data.endswith(b"/waited"), data
    assert waited < 1.5


# -- parked idle connections -------------------------------------------------------------------
#
# A keep-alive connection idle for ``park_after`` seconds gives up its greenlet;
# the client must not notice anything.


def _parked(h) -> int:
    return sum(1 for conn in h.server.connections if conn.parked is not None)


def test_parked_connection_serves_the_next_request(harness, backend):
    h = harness(make_app(), park_after=0.2, keep_alive=10, http=backend)
    sock = run_in_thread(h.connect)
    try:
        sock.sendall(request_bytes("GET", "/before"))
        reader = ResponseReader(sock)
        assert run_in_thread(reader.read).body == b"/before"
        deadline = time.monotonic() + 3
        while not _parked(h) and time.monotonic() < deadline:
            gevent.sleep(0.05)
        assert _parked(h) == 1

        def pipelined():
            sock.sendall(request_bytes("POST", "/echo", body=b"after park") + request_bytes("GET", "/stream"))
            return reader.read().body, reader.read().body

        assert run_in_thread(pipelined) == (b"after park", b"part0;part1;part2;")
        assert _parked(h) == 0
    finally:
        sock.close()


def test_parked_connection_head_in_pieces(harness):
    h = harness(make_app(), park_after=0.2, keep_alive=10, header_timeout=2)
    with run_in_thread(h.connect) as sock:
        reader = ResponseReader(sock)
        sock.sendall(request_bytes("GET", "/one"))
        run_in_thread(reader.read)
        assert serve_until(lambda: _parked(h) == 1)

        def pieces():
            for piece in (b"GET /tw", b"o HTTP/1.1\r\nHo", b"st: x\r\n\r\n"):
                sock.sendall(piece)
                time.sleep(0.05)
            return reader.read().body

        assert run_in_thread(pieces) == b"/two"


def test_parked_connection_closed_at_keep_alive_timeout(harness):
    h = harness(make_app(), park_after=0.1, keep_alive=0.8)

    def client():
        with h.connect() as sock:
            sock.sendall(request_bytes("GET", "/x"))
            ResponseReader(sock).read()
            started = time.monotonic()
            _, closed = read_until_close(sock, 4)
            return closed, time.monotonic() - started

    closed, waited = run_in_thread(client)
    assert closed
    assert 0.5 < waited < 2.0
    assert not h.server.connections


def test_parked_connection_closed_by_client(harness):
    h = harness(make_app(), park_after=0.1, keep_alive=10)
    with run_in_thread(h.connect) as sock:
        sock.sendall(request_bytes("GET", "/x"))
        run_in_thread(ResponseReader(sock).read)
        assert serve_until(lambda: _parked(h) == 1)
    assert serve_until(lambda: not h.server.connections, 3)


def test_parked_connections_closed_at_once_on_shutdown(harness):
    h = harness(make_app(), park_after=0.1, keep_alive=30)
    sock = run_in_thread(h.connect)
    try:
        sock.sendall(request_bytes("GET", "/x"))
        reader = ResponseReader(sock)
        run_in_thread(reader.read)
        assert serve_until(lambda: _parked(h) == 1)
        started = time.monotonic()
        assert h.server.shutdown(5)
        assert time.monotonic() - started < 1
        assert run_in_thread(reader.at_eof)
    finally:
        sock.close()


def test_parked_connections_make_room(harness):
    h = harness(make_app(), park_after=0.1, worker_connections=2, keep_alive=30)

    def two_idle():
        idle = []
        for _ in range(2):
            sock = h.connect()
            sock.sendall(request_bytes("GET", "/idle"))
            ResponseReader(sock).read()
            idle.append(sock)
        return idle

    def third():
        with h.connect() as sock:
            sock.sendall(request_bytes("GET", "/third", {"Connection": "close"}))
            return read_until_close(sock, 3)[0]

    idle = run_in_thread(two_idle)
    try:
        assert serve_until(lambda: _parked(h) == 2)
        assert run_in_thread(third).endswith(b"/third")
    finally:
        for sock in idle:
            sock.close()


def test_graceful_shutdown_serves_a_request_that_raced_with_closing_idle_connections(harness):
    """The next request is in the socket but not read yet when the shutdown closes idle connections.

    Closing a socket with unread bytes resets it: the client would lose a request
    it had already sent. The hub is held (this thread blocks) while the client
    sends, so the connection is still idle, its request unread, at shutdown.
    """
    h = harness(make_app())
    first_done, go, sent = threading.Event(), threading.Event(), threading.Event()

    def client():
        with h.connect() as sock:
            reader = ResponseReader(sock)
            sock.sendall(request_bytes("GET", "/first"))
            first = reader.read()
            first_done.set()
            go.wait(5)
            sock.sendall(request_bytes("GET", "/second"))
            sent.set()
            second = reader.read()
            return first.status, second.status, second.getheader("Connection"), reader.at_eof()

    thread = start_in_thread(client)
    assert serve_until(first_done.is_set)
    # The connection goes back to waiting for the next request: idle.
    assert serve_until(lambda: [conn.waiting for conn in h.server.connections] == [WAIT_REQUEST])
    go.set()
    assert sent.wait(5)  # blocks the hub: the server cannot read the second request yet
    time.sleep(0.05)
    assert h.server.shutdown(5)
    assert join_serving(*thread) == (200, 200, "close", True)


def test_a_request_sent_before_a_graceful_stop_reaches_its_connection(pair):
    """A connection accepted just before the stop, its greenlet not yet run, its request sent.

    Closing it unread would reset the client's connection (CI saw it during a
    USR2 upgrade under load): the request is served, with ``Connection: close``.
    """
    p = pair(make_app())  # the connection's greenlet is spawned, not yet run
    p.client.sendall(request_bytes("GET", "/late"))
    p.server.stop_accepting()

    def client():
        reader = ResponseReader(p.client)
        response = reader.read()
        return response.status, response.body, response.getheader("Connection"), reader.at_eof()

    assert run_in_thread(client) == (200, b"/late", "close", True)


def test_a_connection_without_a_request_closes_after_the_drain_grace_on_a_graceful_stop(pair):
    """Its client may be sending its first request right now: it gets the grace, then a close."""
    p = pair(make_app())
    started = time.monotonic()
    p.server.stop_accepting()
    p.conn.greenlet.join(p.server.drain_grace + 2)
    assert p.conn.greenlet.dead
    assert time.monotonic() - started >= p.server.drain_grace - 0.1
    assert run_in_thread(lambda: read_until_close(p.client, 2)) == (b"", True)


def test_a_request_sent_during_the_drain_grace_is_answered_with_close(pair):
    p = pair(make_app())
    p.server.stop_accepting()
    gevent.sleep(0.3)
    p.client.sendall(request_bytes("GET", "/in-grace"))

    def client():
        reader = ResponseReader(p.client)
        response = reader.read()
        return response.status, response.body, response.getheader("Connection"), reader.at_eof()

    assert run_in_thread(client) == (200, b"/in-grace", "close", True)


def test_a_parked_connection_whose_request_raced_with_the_shutdown_is_served(harness):
    h = harness(make_app(), park_after=0.1, keep_alive=30)
    sock = run_in_thread(h.connect)
    try:
        sock.sendall(request_bytes("GET", "/x"))
        reader = ResponseReader(sock)
        run_in_thread(reader.read)
        assert serve_until(lambda: _parked(h) == 1)
        sock.sendall(request_bytes("GET", "/raced"))  # the hub is not running: not read yet
        time.sleep(0.05)
        assert h.server.shutdown(5)
        response = run_in_thread(reader.read)
        assert (response.status, response.body, response.getheader("Connection")) == (200, b"/raced", "close")
    finally:
        sock.close()
