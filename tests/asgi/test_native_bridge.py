"""Tier (b): ASGI applications served natively by a worker connection, in this process.

An :class:`~greenserve.asgi.bridge.ASGIBridge` is the worker's application;
the worker hands it each parsed request (no WSGI environ in between). The
bridge runs the application on its loop thread (a real OS thread, started on
first use); the hub runs in this thread and the clients in OS threads, as in
``tests/worker``. The applications are raw ASGI callables, so every message
they send is visible here.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from http import HTTPStatus
from time import monotonic, sleep
from typing import Any

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from greenserve.asgi.bridge import ASGIBridge
from tests.conftest import ResponseReader, read_until_close, recv_until, request_bytes
from tests.worker.conftest import Harness, PairHarness, PairHTTPConnection, run_in_thread, wait_serving

#: The streaming response: this many pieces of STREAM_CHUNK bytes, each sent with more_body.
STREAM_CHUNK = 32 * 1024
STREAM_PIECES = 128
#: How far the application may get ahead of a client that does not read: the socket's
#: buffers (made small below) and one piece in transit, with a wide margin. 4 MiB without
#: backpressure.
AHEAD_BOUND = 512 * 1024


class Probe:
    """What the application saw, written in the loop thread and read by the test."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[Any] = []
        #: Streamed body bytes whose ``send()`` has returned.
        self.acked = 0
        #: The sizes of the ``http.request`` bodies the application received.
        self.pieces: list[int] = []
        self.receive_called = threading.Event()

    def note(self, item: Any) -> None:
        with self.lock:
            self.seen.append(item)

    def has(self, item: Any) -> bool:
        with self.lock:
            return item in self.seen


def make_app(probe: Probe) -> Any:
    """A raw ASGI application; the path picks the behaviour."""

    async def text(send: Any, body: bytes, status: Any = 200, headers: list | None = None) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": headers if headers is not None else [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def read_body(receive: Any) -> bytes:
        parts = []
        while True:
            message = await receive()
            assert message["type"] == "http.request", message
            parts.append(message["body"])
            probe.pieces.append(len(message["body"]))
            if not message.get("more_body", False):
                return b"".join(parts)

    async def websocket(receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                probe.note((message["type"], message.get("code")))
                return
            await send({"type": "websocket.send", "text": "echo: " + message["text"]})

    async def app(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await websocket(receive, send)
            return
        path = scope["path"]
        if path == "/hello":
            await text(send, f"{scope['method']} {path}".encode())
        elif path == "/echo":
            await text(send, await read_body(receive))
        elif path == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            piece = b"s" * STREAM_CHUNK
            for _ in range(STREAM_PIECES):
                await send({"type": "http.response.body", "body": piece, "more_body": True})
                probe.acked += len(piece)
            await send({"type": "http.response.body", "body": b"end"})
        elif path == "/head":
            await text(send, b"hello", headers=[(b"content-type", b"text/plain"), (b"content-length", b"5")])
        elif path == "/no-content":
            await text(send, b"dropped", status=204)
        elif path == "/created":
            await text(send, b"made", status=HTTPStatus.CREATED)
        elif path == "/raise-before":
            raise RuntimeError("boom before the response")
        elif path == "/raise-after":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"partial", "more_body": True})
            raise RuntimeError("boom in the middle of the response")
        elif path == "/read-later":
            await asyncio.sleep(0.1)  # the client must not be asked for the body yet
            probe.receive_called.set()
            await text(send, await read_body(receive))
        elif path == "/ignore-body":
            await text(send, b"not read")
        elif path == "/wait-disconnect":
            await read_body(receive)
            probe.note("body read")
            probe.note((await receive())["type"])
            await text(send, b"too late")
        else:
            await text(send, b"not found", status=404)

    return app


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def bridge(probe: Probe) -> ASGIBridge:
    return ASGIBridge(make_app(probe))


@pytest.fixture
def paired(bridge: ASGIBridge) -> Iterator[PairHarness]:
    """The bridge serving one connection; the test holds the client end (``.client``)."""
    served = PairHarness(bridge)
    yield served
    served.close()


@pytest.fixture
def listening(bridge: ASGIBridge) -> Iterator[Harness]:
    """The bridge behind a worker server on a loopback port (clients may reconnect)."""
    served = Harness(bridge)
    yield served
    served.close()


def dechunk(data: bytes) -> tuple[bytes, bool]:
    """A chunked body's content, and whether its last chunk arrived."""
    out = []
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return b"".join(out), True
        out.append(data[:size])
        data = data[size + 2 :]
    return b"".join(out), False


# -- requests and responses ---------------------------------------------------------------


def test_two_gets_on_one_keep_alive_connection(paired):
    p = paired

    def client() -> list[tuple[int, bytes, str | None]]:
        conn = PairHTTPConnection(p.client)
        out = []
        for _ in range(2):
            conn.request("GET", "/hello")
            response = conn.getresponse()
            out.append((response.status, response.read(), response.getheader("Connection")))
        return out

    assert run_in_thread(client) == [(200, b"GET /hello", None)] * 2
    assert p.server.requests == 2
    assert p.conn in p.server.connections  # still open for a third


def test_a_posted_body_is_received_in_pieces_and_echoed(paired, probe):
    p = paired
    payload = bytes(range(256)) * 1200  # 300 KiB: more than one piece

    def client() -> tuple[int, bytes]:
        conn = PairHTTPConnection(p.client)
        conn.request("POST", "/echo", body=payload)
        response = conn.getresponse()
        return response.status, response.read()

    assert run_in_thread(client) == (200, payload)
    assert len(probe.pieces) > 1, probe.pieces
    assert sum(probe.pieces) == len(payload)


def test_a_chunked_request_body_arrives_as_the_client_sends_it(paired, probe):
    p = paired

    def client() -> tuple[int, bytes]:
        conn = PairHTTPConnection(p.client)
        conn.request("POST", "/echo", body=iter([b"one,", b"two,", b"three"]), encode_chunked=True)
        response = conn.getresponse()
        return response.status, response.read()

    assert run_in_thread(client) == (200, b"one,two,three")
    assert sum(probe.pieces) == len(b"one,two,three")


def test_a_streamed_response_is_chunked_and_waits_for_a_slow_client(paired, probe):
    """Each send(more_body=True) returns once its piece is written: a client that
    does not read holds the application back (the socket's buffers are small here)."""
    p = paired
    p.conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
    total = STREAM_CHUNK * STREAM_PIECES + len(b"end")

    def client() -> tuple[bytes, int]:
        sock = p.client
        sock.settimeout(5)
        sock.sendall(request_bytes("GET", "/stream"))
        deadline = monotonic() + 5
        while not probe.acked:  # the response has started
            assert monotonic() < deadline, "the stream did not start"
            sleep(0.005)
        sleep(0.3)  # a client that does not read for a while: the application must wait
        received = b""
        most_ahead = probe.acked
        while not received.endswith(b"0\r\n\r\n"):
            most_ahead = max(most_ahead, probe.acked - len(received))
            data = sock.recv(16 * 1024)
            assert data, "the server closed the connection"
            received += data
            sleep(0.0005)  # still slow, but not too slow for the test
        return received, most_ahead

    received, most_ahead = run_in_thread(client, timeout=30)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nTransfer-Encoding: chunked" in head
    content, complete = dechunk(body)
    assert complete and len(content) == total
    assert content.endswith(b"end")
    assert most_ahead <= AHEAD_BOUND, f"the application ran {most_ahead} bytes ahead of the client"
    assert probe.acked == STREAM_CHUNK * STREAM_PIECES


def test_head_gets_the_headers_without_the_body(paired):
    p = paired

    def client() -> tuple[Any, Any]:
        p.client.sendall(request_bytes("HEAD", "/head") + request_bytes("GET", "/head"))
        reader = ResponseReader(p.client)
        return reader.read("HEAD"), reader.read()

    head, get = run_in_thread(client)
    assert (head.status, head.getheader("Content-Length"), head.body) == (200, "5", b"")
    assert (get.status, get.body) == (200, b"hello")


def test_a_204_from_the_application_has_no_body(paired):
    """The application's body is dropped: the next response follows the 204's head directly."""
    p = paired

    def client() -> tuple[Any, Any]:
        p.client.sendall(request_bytes("GET", "/no-content") + request_bytes("GET", "/hello"))
        reader = ResponseReader(p.client)
        return reader.read(), reader.read()

    no_content, after = run_in_thread(client)
    assert (no_content.status, no_content.body) == (204, b"")
    assert no_content.getheader("Content-Length") is None
    assert no_content.getheader("Transfer-Encoding") is None
    assert (after.status, after.body) == (200, b"GET /hello")


def test_a_status_given_as_an_http_status_member(paired):
    p = paired

    def client() -> tuple[bytes, bytes]:
        p.client.sendall(request_bytes("GET", "/created"))
        response = ResponseReader(p.client).read()
        return response.status, response.reason, response.body

    assert run_in_thread(client) == (201, "Created", b"made")


# -- application errors -------------------------------------------------------------------------


def test_an_application_that_raises_before_its_response_gets_a_500(listening):
    """The server answers 500 (and, as after every error it answers itself, closes the
    connection cleanly so the client reads it); the next request is served."""
    h = listening

    def client() -> tuple[bytes, bool, tuple[int, bytes]]:
        with h.connect() as sock:
            sock.sendall(request_bytes("GET", "/raise-before"))
            data, closed = read_until_close(sock, 5)
        conn = h.http()
        try:
            conn.request("GET", "/hello")
            response = conn.getresponse()
            return data, closed, (response.status, response.read())
        finally:
            conn.close()

    data, closed, after = run_in_thread(client)
    assert data.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert b"\r\nConnection: close\r\n" in data
    assert closed
    assert after == (200, b"GET /hello")


def test_an_application_that_raises_after_its_response_started_closes_the_connection(paired):
    p = paired

    def client() -> tuple[bytes, bool]:
        p.client.sendall(request_bytes("GET", "/raise-after"))
        return read_until_close(p.client, 5)

    data, closed = run_in_thread(client)
    assert closed
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"partial" in body
    assert dechunk(body) == (b"partial", False), "a cut response must not look complete"


# -- Expect: 100-continue and disconnects ---------------------------------------------------------


def test_100_continue_is_sent_when_the_application_calls_receive(paired, probe):
    p = paired

    def client() -> tuple[bytes, bool, Any]:
        sock = p.client
        sock.sendall(request_bytes("POST", "/read-later", {"Expect": "100-continue", "Content-Length": "4"}))
        interim = recv_until(sock, b"\r\n\r\n", 5)
        asked_then = probe.receive_called.is_set()
        sock.sendall(b"data")
        return interim, asked_then, ResponseReader(sock).read("POST")

    interim, asked_then, response = run_in_thread(client)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert asked_then, "100 Continue went out before the application asked for the body"
    assert (response.status, response.body) == (200, b"data")


def test_100_continue_is_not_sent_when_the_application_never_reads(paired):
    p = paired

    def client() -> tuple[bytes, bool]:
        head = request_bytes("POST", "/ignore-body", {"Expect": "100-continue", "Content-Length": "99999"})
        p.client.sendall(head)
        return read_until_close(p.client, 5)

    data, closed = run_in_thread(client)
    assert data.startswith(b"HTTP/1.1 200 ")
    assert b"100 Continue" not in data
    assert data.endswith(b"not read")
    assert closed  # the body was never asked for: the connection cannot be reused


def test_a_client_leaving_while_the_application_awaits_receive_gives_http_disconnect(paired, probe):
    p = paired
    p.client.sendall(request_bytes("POST", "/wait-disconnect", body=b"abc"))
    wait_serving(lambda: probe.has("body read"), what="the application read the body")
    p.client.close()
    wait_serving(lambda: probe.has("http.disconnect"), what="the application hears the client left")
    wait_serving(lambda: not p.server.connections, what="the connection ends")


# -- WebSocket ----------------------------------------------------------------------------------


def _until(sock: socket.socket, ws: WSConnection, kind: type) -> Any:
    """Read frames until an event of ``kind`` arrives; returns it."""
    while True:
        for event in ws.events():
            if isinstance(event, kind):
                return event
        data = sock.recv(65536)
        assert data, f"the server closed the connection before a {kind.__name__}"
        ws.receive_data(data)


def test_a_websocket_is_served_natively(paired, probe):
    p = paired

    def client() -> tuple[str, int, bytes]:
        sock = p.client
        sock.settimeout(5)
        ws = WSConnection(ConnectionType.CLIENT)
        sock.sendall(ws.send(Request(host="socketpair.test", target="/ws")))
        _until(sock, ws, AcceptConnection)
        sock.sendall(ws.send(TextMessage(data="hi")))
        echo = _until(sock, ws, TextMessage)
        sock.sendall(ws.send(CloseConnection(code=1000)))
        closing = _until(sock, ws, CloseConnection)
        return echo.data, closing.code, sock.recv(10)

    assert run_in_thread(client) == ("echo: hi", 1000, b"")
    wait_serving(lambda: probe.has(("websocket.disconnect", 1000)), what="the application hears the close")
    wait_serving(lambda: not p.server.connections, what="the connection ends")
