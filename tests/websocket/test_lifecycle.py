"""A WebSocket's life in the server: clients that vanish, graceful shutdown, the
connection pool, ``--request-timeout``, a thousand connections at once, and
upgrades the application declines or the client gets wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time

import pytest
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import ResponseReader, request_bytes
from tests.websocket.conftest import ws_connect, ws_url
from tests.websocket.raw import TEXT, RawClient, frame, handshake_request

# -- clients that vanish --------------------------------------------------------------


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_client_vanishes_in_the_middle_of_a_message(survivor, markers, reset):
    marker = markers.new()
    with RawClient(survivor.address, f"/echo?marker={marker}") as raw:
        raw.send(frame(TEXT, b"complete"))
        assert raw.message() == "complete"
        raw.send(frame(TEXT, b"half of a mess", fin=False))
        raw.drop(reset=reset)
    seen = markers.wait(marker)
    assert seen["closed"]  # WSGI: receive() returned None
    if survivor.kind == "asgi":
        assert seen["code"] == 1006  # websocket.disconnect without a close frame


def test_client_vanishes_while_the_server_sends(survivor, markers):
    marker = markers.new()
    with RawClient(survivor.address, f"/flood?marker={marker}") as raw:
        for _ in range(3):
            assert len(raw.message()) == 16384
        raw.drop(reset=True)
    seen = markers.wait(marker)
    assert seen["sent"] >= 3
    if survivor.kind == "wsgi":
        assert seen["send_error"] == "WebSocketError"  # gevent-websocket's, as its applications expect
        assert seen["after"] is None
    else:
        assert seen["after"] == {"type": "websocket.disconnect", "code": 1006}


# -- graceful shutdown ------------------------------------------------------------------


def test_graceful_shutdown_closes_websockets_with_1001(start, markers):
    server = start("--graceful-timeout", "20")
    names = [markers.new() for _ in range(3)]
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(ws_connect(server, f"/echo?marker={name}")) for name in names]
        raw = stack.enter_context(RawClient(server.address, "/echo"))
        for conn in clients:
            conn.send("ready")
            assert conn.recv(timeout=5) == "ready"
        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        for conn in clients:
            with pytest.raises(ConnectionClosed) as closed:
                conn.recv(timeout=5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        closed_raw = raw.closed()
        assert (closed_raw.code, closed_raw.eof) == (1001, True)
        assert time.monotonic() - started < 3, "the close frames were not sent at once"
    for name in names:
        seen = markers.wait(name)
        assert seen["closed"]  # WSGI: receive() returned None
        if server.kind == "asgi":
            assert seen["code"] == 1001
    assert server.wait(timeout=10) == 0
    assert time.monotonic() - started < 10, "the server waited for its graceful timeout"


# -- the connection pool ------------------------------------------------------------------


def test_websockets_hold_their_pool_slots(start):
    server = start("--worker-connections", "5")
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(ws_connect(server)) for _ in range(5)]
        for conn in clients:
            conn.send("in the pool")
            assert conn.recv(timeout=5) == "in the pool"
        http = stack.enter_context(server.connect())
        http.sendall(request_bytes("GET", "/"))
        http.settimeout(0.5)
        with pytest.raises(TimeoutError):
            http.recv(1)  # the pool is full of WebSockets: the sixth client waits
        clients[0].close()
        response = ResponseReader(http, timeout=5).read()
        assert (response.status, response.body) == (200, b"http")
        for conn in clients[1:]:  # the others were not disturbed
            conn.send("still here")
            assert conn.recv(timeout=5) == "still here"


# -- request timeout ------------------------------------------------------------------


def test_websocket_outlives_the_request_timeout(server):
    """The server runs with --request-timeout 1: a WebSocket is not a request that overruns."""
    with ws_connect(server) as conn:
        started = time.monotonic()
        count = 0
        while time.monotonic() - started < 3:
            conn.send(f"tick {count}")
            assert conn.recv(timeout=5) == f"tick {count}"
            count += 1
            time.sleep(0.25)
    assert count >= 10


# -- a thousand at once -------------------------------------------------------------


CONNECTIONS = 1000


async def _thousand(url: str) -> list[str]:
    handshakes = asyncio.Semaphore(100)  # at most this many handshakes in flight (not open connections)

    async def open_one():
        async with handshakes:
            return await async_connect(
                url, open_timeout=15, close_timeout=5, ping_interval=None, compression=None, proxy=None
            )

    clients = await asyncio.gather(*(open_one() for _ in range(CONNECTIONS)))
    try:

        async def echo(index: int, conn) -> str:
            await conn.send(f"client {index}")
            return await asyncio.wait_for(conn.recv(), 15)

        return await asyncio.gather(*(echo(i, conn) for i, conn in enumerate(clients)))
    finally:
        await asyncio.gather(*(conn.close() for conn in clients), return_exceptions=True)


def test_a_thousand_websockets_on_one_worker(survivor):
    started = time.monotonic()
    replies = asyncio.run(asyncio.wait_for(_thousand(ws_url(survivor)), 30))
    assert replies == [f"client {i}" for i in range(CONNECTIONS)]
    assert time.monotonic() - started < 20


# -- upgrades declined or malformed -------------------------------------------------


def test_declined_upgrade_is_plain_http_and_the_connection_stays_http(server):
    with server.connect() as sock:
        reader = ResponseReader(sock)
        sock.sendall(handshake_request("/forbidden", b"dGhlIHNhbXBsZSBub25jZQ=="))
        refused = reader.read()
        assert refused.status == 403
        assert refused.getheader("Upgrade") is None
        assert refused.getheader("Sec-WebSocket-Accept") is None
        sock.sendall(request_bytes("GET", "/"))
        after = reader.read()
        assert (after.status, after.body) == (200, b"http")


INVALID_HANDSHAKES = {
    "no Sec-WebSocket-Key": [("Sec-WebSocket-Key", None)],
    "wrong Sec-WebSocket-Version": [("Sec-WebSocket-Version", "8")],
    "no Sec-WebSocket-Version": [("Sec-WebSocket-Version", None)],
}


@pytest.mark.parametrize("name", sorted(INVALID_HANDSHAKES))
def test_invalid_handshake_is_a_client_error(server, name):
    start = len(server.lines)
    with server.connect() as sock:
        reader = ResponseReader(sock)
        sock.sendall(handshake_request("/echo", b"dGhlIHNhbXBsZSBub25jZQ==", INVALID_HANDSHAKES[name]))
        response = reader.read()
    assert response.status in (400, 426), (response.status, response.body)
    if "Version" in name:
        assert response.getheader("Sec-WebSocket-Version") == "13"  # RFC 6455 4.2.2: the version we speak
    if response.status == 426:
        assert response.getheader("Upgrade") == "websocket"  # RFC 9110 15.5.22
    server.wait_for("invalid WebSocket handshake", start=start)  # logged as the client's mistake
    assert "Traceback" not in "\n".join(server.lines[start:])


def test_plain_http_is_not_affected(server):
    with socket.create_connection(server.address, timeout=5) as sock:
        reader = ResponseReader(sock)
        sock.sendall(request_bytes("GET", "/echo"))
        response = reader.read()
    assert (response.status, response.body) == (200, b"http")
