"""Tier (b): the worker's connection pool as clients see it.

Silent clients (connected, nothing sent) cannot hold the pool: once they have
waited ``SILENT_GRACE`` they are the first to go when a client that speaks
needs a slot, before idle keep-alive connections. A graceful shutdown loses
no request a client has sent. A connection's first bytes can be claimed by
another protocol (the ``prefaces`` seam).

The hub runs in this thread; clients are blocking sockets, used from OS
threads or from this thread while the hub is held (see ``conftest.py``).
Holding the hub is how these tests make "the request arrives just as the
server closes the connection" happen on purpose.
"""

from __future__ import annotations

import selectors
import socket
import threading
from collections.abc import Callable
from time import monotonic
from typing import Any

import gevent
import pytest
from gevent.event import Event

from greenserve.worker.connection import WAIT_HEAD, WAIT_REQUEST, Connection
from greenserve.worker.server import SILENT_GRACE
from tests.conftest import ResponseReader, read_until_close, request_bytes
from tests.worker.conftest import join_serving, run_in_thread, start_in_thread, wait_serving


def app(environ, start_response):
    """The path, then the client's address as the application sees it."""
    path = environ["PATH_INFO"]
    if path == "/sleep":
        gevent.sleep(float(environ["QUERY_STRING"] or 0.3))
    body = f"{path} {environ['REMOTE_ADDR']} {environ['REMOTE_PORT']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def connection_of(h, sock: socket.socket) -> Connection | None:
    """The server's side of the client socket ``sock`` (None once the server dropped it)."""
    port = str(sock.getsockname()[1])
    return next((conn for conn in h.server.connections if conn.remote[1] == port), None)


def idle_for(conn: Connection) -> float:
    return monotonic() - conn.waiting_since


def get(h, path: str, headers: dict[str, str] | None = None) -> tuple[bytes, float]:
    """A new connection, one request; (everything received until the close, seconds taken)."""
    started = monotonic()
    with h.connect() as sock:
        sock.sendall(request_bytes("GET", path, {"Connection": "close", **(headers or {})}))
        data, closed = read_until_close(sock, 5)
    assert closed, data
    return data, monotonic() - started


class EOFWatcher:
    """Records, in a thread, when each client socket sees the server close it (EOF).

    Sockets still open when the watcher stops are simply not in ``eof_at``.
    """

    def __init__(self, socks: list[socket.socket]) -> None:
        self.socks = socks
        self.eof_at: dict[socket.socket, float] = {}
        self.unexpected: list[tuple[socket.socket, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:
            for sock in self.socks:
                selector.register(sock, selectors.EVENT_READ)
            while not self._stop.is_set() and len(self.eof_at) < len(self.socks):
                for key, _ in selector.select(0.01):
                    sock = key.fileobj
                    try:
                        data = sock.recv(4096)
                    except ConnectionResetError:
                        data = b"<reset>"
                    if data:
                        self.unexpected.append((sock, data))
                    self.eof_at[sock] = monotonic()
                    selector.unregister(sock)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


# -- silent clients and the full pool ---------------------------------------------------


def test_a_pool_full_of_silent_clients_makes_room_for_one_that_speaks(harness):
    h = harness(app, worker_connections=8, header_timeout=10)
    silent = [h.connect() for _ in range(8)]
    try:
        wait_serving(lambda: len(h.server.connections) == 8, what="8 silent connections accepted")
        conns = list(h.server.connections)
        wait_serving(lambda: min(map(idle_for, conns)) > SILENT_GRACE, what="older than the grace")
        watcher = EOFWatcher(silent)
        try:
            data, took = run_in_thread(lambda: get(h, "/speaks"))
            # The server let go of some silent connections; each of their clients sees a clean EOF.
            dropped = {sock for sock in silent if connection_of(h, sock) is None}
            wait_serving(lambda: dropped <= set(watcher.eof_at), what="the dropped clients see EOF")
        finally:
            watcher.stop()
        assert data.startswith(b"HTTP/1.1 200 ") and b"/speaks 127.0.0.1 " in data
        assert took < 0.5, f"the client that spoke waited {took:.3f} s"
        assert dropped
        assert watcher.unexpected == []  # closed without a response (nor a reset): they asked nothing
    finally:
        for sock in silent:
            sock.close()


def test_silent_clients_younger_than_the_grace_are_not_closed_at_once(harness):
    """The newcomer arrives while the silent connections are a few ms old: it waits for the grace.

    Asserted as invariants that hold however slow the machine is: no silent
    client is closed before it has had its grace, and the newcomer is answered
    only once one of them could go.
    """
    h = harness(app, worker_connections=4, header_timeout=10)
    silent = [h.connect() for _ in range(4)]
    try:
        wait_serving(lambda: len(h.server.connections) == 4, what="4 silent connections accepted")
        born = {sock: connection_of(h, sock).waiting_since for sock in silent}
        # The hub is held from here on until the client thread runs: the newcomer
        # is in the listen queue while the silent connections are brand new.
        newcomer = h.connect()
        newcomer.sendall(request_bytes("GET", "/newcomer", {"Connection": "close"}))
        arrived = monotonic()
        watcher = EOFWatcher(silent)

        def client() -> tuple[bytes, float]:
            data, _ = read_until_close(newcomer, 5)
            return data, monotonic()

        try:
            data, answered = run_in_thread(client)
            wait_serving(lambda: watcher.eof_at, what="a silent client is closed")
        finally:
            watcher.stop()
            newcomer.close()
        assert data.startswith(b"HTTP/1.1 200 ") and b"/newcomer" in data
        oldest = min(born.values())
        assert answered >= oldest + SILENT_GRACE, "the newcomer got a slot before any silent client's grace"
        assert answered - arrived < 1.0
        for sock, eof in watcher.eof_at.items():
            assert eof >= born[sock] + SILENT_GRACE, f"closed {eof - born[sock]:.3f} s after it connected"
    finally:
        for sock in silent:
            sock.close()


def test_silent_clients_go_before_an_idle_keep_alive_connection(harness):
    h = harness(app, worker_connections=2, keep_alive=30, header_timeout=10)
    keep = run_in_thread(h.connect)
    reader = ResponseReader(keep)
    silent = None
    try:
        keep.sendall(request_bytes("GET", "/first"))
        first = run_in_thread(reader.read).body
        kept = connection_of(h, keep)
        assert kept is not None
        wait_serving(lambda: kept.waiting == WAIT_REQUEST, what="the keep-alive connection is idle")
        silent = h.connect()  # idle for less time than the keep-alive connection
        wait_serving(lambda: len(h.server.connections) == 2)
        quiet = connection_of(h, silent)
        assert quiet is not None and kept.waiting_since < quiet.waiting_since
        wait_serving(lambda: idle_for(quiet) > SILENT_GRACE, what="the silent one is past its grace")

        data, took = run_in_thread(lambda: get(h, "/newcomer"))
        assert data.startswith(b"HTTP/1.1 200 ") and b"/newcomer" in data
        assert took < 0.5
        assert run_in_thread(lambda: read_until_close(silent, 3)) == (b"", True)

        # The keep-alive client did not lose its connection: its next request is
        # answered on it (the application sees the same client port).
        keep.sendall(request_bytes("GET", "/second"))
        second = run_in_thread(reader.read).body
        assert second.split()[1:] == first.split()[1:]
        assert kept in h.server.connections
    finally:
        keep.close()
        if silent is not None:
            silent.close()


@pytest.mark.parametrize("after_a_request", [False, True], ids=["first-head", "next-head"])
def test_a_client_that_sent_part_of_a_head_can_be_evicted(harness, after_a_request):
    """A partial head is a slow client: it goes (after the grace) before an idle keep-alive one.

    ``next-head``: the slow client already had a request answered on that
    connection; its unfinished second head still makes it slow, not idle.
    """
    h = harness(app, worker_connections=2, keep_alive=30, header_timeout=10)
    keep = run_in_thread(h.connect)
    reader = ResponseReader(keep)
    partial = None
    try:
        keep.sendall(request_bytes("GET", "/first"))
        run_in_thread(reader.read)
        partial = h.connect()
        if after_a_request:
            partial.sendall(request_bytes("GET", "/answered"))
            assert run_in_thread(ResponseReader(partial).read).status == 200
        partial.sendall(b"GET /never-finished HTTP/1.1\r\nHost: x\r\n")
        wait_serving(lambda: len(h.server.connections) == 2)
        slow = connection_of(h, partial)
        kept = connection_of(h, keep)
        assert slow is not None and kept is not None
        wait_serving(lambda: slow.waiting == WAIT_HEAD, what="the head has started")
        wait_serving(lambda: idle_for(slow) > SILENT_GRACE, what="the slow one is past its grace")
        assert kept.waiting == WAIT_REQUEST and kept.waiting_since < slow.waiting_since

        data, took = run_in_thread(lambda: get(h, "/newcomer"))
        assert data.startswith(b"HTTP/1.1 200 ") and b"/newcomer" in data
        assert took < 0.5  # not the 10 s header timeout
        rest, closed = run_in_thread(lambda: read_until_close(partial, 3))
        assert closed
        assert b"/never-finished" not in rest
        keep.sendall(request_bytes("GET", "/second"))
        assert run_in_thread(reader.read).status == 200
        assert kept in h.server.connections
    finally:
        keep.close()
        if partial is not None:
            partial.close()


def test_a_silent_client_whose_request_arrives_at_eviction_time_is_served(harness):
    """The request is in the socket, unread, when the pool looks for a connection to close.

    Closing a socket with unread bytes resets it: the client would lose a
    request it sent in time. The server peeks first and serves it instead.
    The hub is held while both the request and the newcomer arrive.
    """
    h = harness(app, worker_connections=1, header_timeout=10)
    silent = run_in_thread(h.connect)
    newcomer = None
    try:
        wait_serving(lambda: len(h.server.connections) == 1)
        conn = connection_of(h, silent)
        assert conn is not None and conn.parked is not None
        wait_serving(lambda: idle_for(conn) > SILENT_GRACE, what="the silent one is past its grace")
        # Hub held: the request lands in the parked connection's socket, then the newcomer queues.
        silent.sendall(request_bytes("GET", "/late-but-in-time"))
        newcomer = h.connect()
        newcomer.sendall(request_bytes("GET", "/newcomer", {"Connection": "close"}))
        wait_serving(lambda: h.server.requests == 2, what="both requests answered")

        late = run_in_thread(ResponseReader(silent).read)
        assert (late.status, late.body.split()[0]) == (200, b"/late-but-in-time")
        data, closed = run_in_thread(lambda: read_until_close(newcomer, 3))
        assert closed and data.startswith(b"HTTP/1.1 200 ") and b"/newcomer" in data
    finally:
        silent.close()
        if newcomer is not None:
            newcomer.close()


# -- parked new connections ------------------------------------------------------------------


def test_a_new_connection_that_sent_nothing_waits_parked_and_is_served_when_it_speaks(harness):
    h = harness(app, header_timeout=10)
    sock = run_in_thread(h.connect)
    try:
        wait_serving(lambda: len(h.server.connections) == 1)
        conn = connection_of(h, sock)
        assert conn is not None
        assert conn.greenlet is None, "a silent connection costs no greenlet"
        assert conn.parked is not None
        sock.sendall(request_bytes("GET", "/spoke"))
        response = run_in_thread(ResponseReader(sock).read)
        assert response.status == 200
        assert response.body.split()[0] == b"/spoke"
        assert response.getheader("Connection") is None  # kept alive
        assert conn in h.server.connections
        assert conn.parked is None
    finally:
        sock.close()


def test_a_parked_new_connection_that_never_speaks_is_closed_at_the_header_timeout(harness):
    h = harness(app, header_timeout=0.4)

    def client() -> tuple[bytes, bool, float]:
        with h.connect() as sock:
            started = monotonic()
            data, closed = read_until_close(sock, 5)
            return data, closed, monotonic() - started

    thread = start_in_thread(client)
    wait_serving(lambda: h.server.connections, what="the silent connection is accepted")
    (conn,) = h.server.connections
    assert conn.greenlet is None and conn.parked is not None
    data, closed, waited = join_serving(*thread)
    assert (data, closed) == (b"", True)
    assert 0.3 <= waited < 2.0, waited
    wait_serving(lambda: not h.server.connections, what="the connection is gone from the pool")


# -- graceful shutdown -----------------------------------------------------------------------


def test_graceful_shutdown_closes_idle_connections_and_answers_every_request_sent(harness):
    """Three clients at the moment of the stop: idle for long, idle for a moment, in flight."""
    h = harness(app, keep_alive=30, header_timeout=10)
    grace = h.server.drain_grace
    long_idle, short_idle = run_in_thread(lambda: (h.connect(), h.connect()))
    long_reader, short_reader = ResponseReader(long_idle), ResponseReader(short_idle)
    try:
        long_idle.sendall(request_bytes("GET", "/long-idle"))
        run_in_thread(long_reader.read)
        long_conn = connection_of(h, long_idle)
        assert long_conn is not None
        wait_serving(lambda: idle_for(long_conn) > grace, timeout=grace + 5, what="idle past the grace")

        def in_flight() -> Any:
            with h.connect() as sock:
                sock.sendall(request_bytes("GET", "/sleep?0.6"))
                reader = ResponseReader(sock)
                response = reader.read()
                first_word = response.body.split()[0]
                return response.status, first_word, response.getheader("Connection"), reader.at_eof()

        flight = start_in_thread(in_flight)
        wait_serving(lambda: h.server.requests == 2, what="the slow request is running")
        short_idle.sendall(request_bytes("GET", "/short-idle"))
        run_in_thread(short_reader.read)
        short_conn = connection_of(h, short_idle)
        assert short_conn is not None
        wait_serving(lambda: short_conn.waiting == WAIT_REQUEST)

        started = monotonic()
        stopping = gevent.spawn(h.server.shutdown, 10)
        wait_serving(lambda: h.server.stopping)
        assert idle_for(short_conn) < grace
        # Within the grace, the short-idle client sends its next request.
        short_idle.sendall(request_bytes("GET", "/next"))
        closed_at: dict[str, float] = {}

        def long_client() -> bool:
            _, closed = read_until_close(long_idle, 3)
            closed_at["long"] = monotonic()
            return closed

        assert run_in_thread(long_client)
        assert closed_at["long"] - started < min(0.5, grace), "the long-idle one was not closed at once"
        response = run_in_thread(short_reader.read)
        assert (response.status, response.body.split()[0]) == (200, b"/next")
        assert response.getheader("Connection") == "close"
        assert run_in_thread(short_reader.at_eof)
        assert join_serving(*flight) == (200, b"/sleep", "close", True)
        stopping.join(10)
        assert stopping.value is True
        assert not h.server.connections
    finally:
        long_idle.close()
        short_idle.close()


@pytest.mark.parametrize("acceptor_ran", [True, False], ids=["accepting", "before-the-first-accept"])
def test_graceful_shutdown_answers_clients_still_in_the_listen_queue(harness, acceptor_ran):
    """Clients connected and sent their requests before the stop; the worker had not accepted them.

    Closing the listener would reset them: they are accepted and answered
    instead. The hub is held while they connect, so the acceptor cannot take
    them first. ``before-the-first-accept``: the stop comes before the accept
    loop ever ran (it used to wait forever in accept() for one more client).
    """
    h = harness(app)
    if acceptor_ran:
        data, _ = run_in_thread(lambda: get(h, "/first"))  # the accept loop is running
        assert data.startswith(b"HTTP/1.1 200 ")
    clients = [h.connect() for _ in range(5)]
    try:
        for index, sock in enumerate(clients):
            sock.sendall(request_bytes("GET", f"/queued{index}"))
        assert not h.server.connections
        started = monotonic()
        assert h.server.shutdown(5) is True
        assert monotonic() - started < 2

        def read_all() -> list[tuple[int, bytes, str | None, bool]]:
            out = []
            for sock in clients:
                reader = ResponseReader(sock)
                response = reader.read()
                first_word = response.body.split()[0]
                out.append((response.status, first_word, response.getheader("Connection"), reader.at_eof()))
            return out

        assert run_in_thread(read_all) == [(200, f"/queued{i}".encode(), "close", True) for i in range(5)]
    finally:
        for sock in clients:
            sock.close()


# -- the first-bytes seam (prefaces) ---------------------------------------------------------

HELLO = b"HELLO "


def hello_preface(conn: Connection, data: bytes) -> bytes | None:
    """A made-up preamble, ``HELLO <address>\\r\\n``, naming the real client (like PROXY protocol)."""
    if not data.startswith(HELLO):
        return data
    line, sep, rest = data.partition(b"\r\n")
    assert sep, "the test sends the whole preamble at once"
    conn.set_remote((line[len(HELLO) :].decode("ascii"), "4711"))
    return rest


def make_ping_preface(release: Event, seen: list[Connection]) -> Callable[[Connection, bytes], bytes | None]:
    """A protocol that owns the connection from its first bytes: ``PING`` -> ``PONG``."""

    def ping_preface(conn: Connection, data: bytes) -> bytes | None:
        if not data.startswith(b"PING"):
            return data
        seen.append(conn)
        conn.sock.sendall(b"PONG\r\n")
        release.wait(5)  # the test looks at the pool meanwhile
        return None

    return ping_preface


def test_a_preface_consumes_a_preamble_and_http_serves_what_follows(harness):
    h = harness(app)
    h.server.prefaces = (hello_preface,)

    def client() -> tuple[Any, Any]:
        with h.connect() as sock:
            sock.sendall(b"HELLO 203.0.113.7\r\n" + request_bytes("GET", "/behind-a-proxy"))
            reader = ResponseReader(sock)
            first = reader.read()
            sock.sendall(request_bytes("GET", "/again", {"Connection": "close"}))  # no preamble now
            return first, reader.read()

    first, second = run_in_thread(client)
    assert (first.status, first.body) == (200, b"/behind-a-proxy 203.0.113.7 4711")
    assert (second.status, second.body) == (200, b"/again 203.0.113.7 4711")
    # Connections without the preamble are plain HTTP/1.1.
    data, _ = run_in_thread(lambda: get(h, "/plain"))
    assert data.startswith(b"HTTP/1.1 200 ") and b"/plain 127.0.0.1 " in data


def test_a_preface_that_serves_the_connection_keeps_it_in_the_pool_while_it_runs(harness):
    release = Event()
    seen: list[Connection] = []
    h = harness(app)
    h.server.prefaces = (hello_preface, make_ping_preface(release, seen))
    sock = run_in_thread(h.connect)
    try:
        sock.sendall(b"PING\r\n")
        assert run_in_thread(lambda: sock.recv(100)) == b"PONG\r\n"
        (conn,) = seen
        assert h.server.connections == {conn}, "the other protocol's connection still counts"
        # An HTTP client meanwhile is served as usual, next to it.
        data, _ = run_in_thread(lambda: get(h, "/meanwhile"))
        assert data.startswith(b"HTTP/1.1 200 ")
        assert h.server.connections == {conn}
        release.set()
        wait_serving(lambda: not h.server.connections, what="the connection leaves the pool when done")
        assert run_in_thread(lambda: read_until_close(sock, 3)) == (b"", True)
        assert h.server.requests == 1  # only /meanwhile was HTTP
    finally:
        release.set()
        sock.close()
