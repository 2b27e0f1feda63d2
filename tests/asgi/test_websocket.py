"""WebSockets through the bridge: echo, subprotocols, close codes, denial, limits, pings."""

from __future__ import annotations

import json
import signal
import socket
import time

import pytest
import requests
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Ping, Request, TextMessage

from tests.asgi.conftest import wait_for_file, ws_url


@pytest.fixture(scope="module")
def server(module_serve):
    return module_serve("--single-process", "ws_app:app")


@pytest.fixture(scope="module")
def strict(module_serve):
    return module_serve(
        "--single-process",
        "--ws-max-size",
        "1024",
        "--ws-ping-interval",
        "0.5",
        "--ws-ping-timeout",
        "0.5",
        "ws_app:app",
    )


def ws(server, path: str, **kwargs):
    options = {"open_timeout": 5, "close_timeout": 2, "proxy": None, "ping_interval": None, **kwargs}
    return connect(ws_url(server, path), **options)


def test_echo_text_and_bytes(server):
    with ws(server, "/echo") as conn:
        conn.send("héllo")
        assert conn.recv(timeout=5) == "héllo"
        conn.send(b"\x00\xffbytes")
        assert conn.recv(timeout=5) == b"\x00\xffbytes"
        for i in range(50):
            conn.send(f"m{i}")
        assert [conn.recv(timeout=5) for _ in range(50)] == [f"m{i}" for i in range(50)]
        big = bytes(range(256)) * 4096  # 1 MB
        conn.send(big)
        assert conn.recv(timeout=5) == big


def test_scope(server):
    with ws(server, "/scope?x=1", subprotocols=["p1", "p2"]) as conn:
        scope = json.loads(conn.recv(timeout=5))
    assert scope["type"] == "websocket"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/scope"
    assert scope["raw_path"] == "/scope"
    assert scope["query_string"] == "x=1"
    assert scope["subprotocols"] == ["p1", "p2"]
    assert scope["has_method"] is False
    assert scope["asgi"]["version"] == "3.0"
    assert scope["http_version"] == "1.1"


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [(["chat.v1", "chat.v2"], "chat.v2"), (["chat.v1"], "chat.v1"), (None, None), (["other"], None)],
)
def test_subprotocol_negotiation(server, offered, chosen):
    with ws(server, "/subprotocol", subprotocols=offered) as conn:
        assert conn.subprotocol == chosen
        info = json.loads(conn.recv(timeout=5))
    assert info == {"offered": offered or [], "chosen": chosen}


def test_app_closes_with_4001(server):
    with ws(server, "/close4001") as conn:
        assert conn.recv(timeout=5) == "closing"
        with pytest.raises(ConnectionClosed) as closed:
            conn.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4001
    assert closed.value.rcvd.reason == "go away"


def test_client_close_code_reaches_the_app(server):
    marker = server.markers / "close-1001.json"
    with ws(server, f"/echo?marker={marker}") as conn:
        conn.send("bye")
        assert conn.recv(timeout=5) == "bye"
        conn.close(code=1001, reason="going away")
    assert wait_for_file(marker, timeout=5)["code"] == 1001


def test_client_vanishing_reaches_the_app(server):
    """The TCP connection drops without a close frame: the app gets a disconnect (1006)."""
    marker = server.markers / "vanished.json"
    with ws(server, f"/echo?marker={marker}") as conn:
        conn.send("x")
        assert conn.recv(timeout=5) == "x"
        conn.socket.shutdown(socket.SHUT_RDWR)
        conn.socket.close()
        assert wait_for_file(marker, timeout=5)["code"] == 1006


def test_close_before_accept_is_403(server):
    with pytest.raises(InvalidStatus) as denied:
        ws(server, "/deny")
    assert denied.value.response.status_code == 403


def test_denial_response_extension(server):
    with pytest.raises(InvalidStatus) as denied:
        ws(server, "/deny401")
    response = denied.value.response
    assert response.status_code == 401
    assert response.body == b"no token"
    assert response.headers["www-authenticate"] == "Bearer"


def test_app_error_before_accept_is_500(server):
    start = len(server.lines)
    with pytest.raises(InvalidStatus) as denied:
        ws(server, "/raise-before-accept")
    assert denied.value.response.status_code == 500
    server.wait_for("websocket app failed before accept", timeout=3, start=start)


def test_plain_http_still_served(server):
    assert requests.get(server.url + "/echo", timeout=5).text == "http"


def test_message_over_max_size_closes_with_1009(strict):
    with ws(strict, "/echo") as conn:
        conn.send("a" * 1000)
        assert conn.recv(timeout=5) == "a" * 1000
        conn.send("b" * 2048)
        with pytest.raises(ConnectionClosed) as closed:
            conn.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


def test_fragmented_message_over_max_size_closes_with_1009(strict):
    with ws(strict, "/echo") as conn, pytest.raises(ConnectionClosed) as closed:
        # One message in two frames. The server may close before the client has
        # sent the second frame (send raises) or after (recv raises): either
        # way, the client must have received the close frame with 1009.
        conn.send(["x" * 600, "y" * 600])
        conn.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_client_answering_pings_stays_open(strict):
    with ws(strict, "/echo") as conn:
        time.sleep(3)
        conn.send("still here")
        assert conn.recv(timeout=5) == "still here"


def handshake(address: tuple[str, int], path: str) -> tuple[socket.socket, WSConnection, bytes]:
    sock = socket.create_connection(address, timeout=5)
    client = WSConnection(ConnectionType.CLIENT)
    sock.sendall(client.send(Request(host="localhost", target=path)))
    events: list = []
    while not any(isinstance(event, AcceptConnection) for event in events):
        data = sock.recv(65536)
        assert data, "closed during the handshake"
        client.receive_data(data)
        events.extend(client.events())
    return sock, client, b""


def test_client_ignoring_pings_is_closed_with_1011(strict):
    sock, client, _ = handshake(strict.address, "/echo")
    started = time.monotonic()
    pings = 0
    close = None
    with sock:
        sock.settimeout(5)
        while close is None:
            data = sock.recv(65536)
            if not data:
                break
            client.receive_data(data)
            for event in client.events():
                if isinstance(event, Ping):
                    pings += 1  # and never answer
                elif isinstance(event, CloseConnection):
                    close = event
    elapsed = time.monotonic() - started
    assert pings >= 1
    assert close is not None, "the server closed the socket without a close frame"
    assert close.code == 1011
    assert 0.5 <= elapsed < 2.5, elapsed


def test_raw_client_echo_over_wsproto(server):
    sock, client, _ = handshake(server.address, "/echo")
    with sock:
        sock.sendall(client.send(TextMessage(data="raw")))
        received = []
        while not received:
            client.receive_data(sock.recv(65536))
            received = [event.data for event in client.events() if isinstance(event, TextMessage)]
        assert received == ["raw"]
        sock.sendall(client.send(CloseConnection(code=1000)))


@pytest.mark.parametrize("mode", [["--single-process"], ["-w", "1"]], ids=["single-process", "master"])
def test_graceful_stop_closes_websockets_with_1001_at_once(serve, mode):
    """SIGTERM: every open WebSocket gets a 1001 close frame now, not a cut at the end of the grace period."""
    server = serve(*mode, "ws_app:app", graceful=30.0)
    marker = server.markers / "stopped.json"
    with ws(server, f"/echo?marker={marker}") as conn:
        conn.send("before")
        assert conn.recv(timeout=5) == "before"
        signalled = time.monotonic()
        server.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed:
            conn.recv(timeout=10)
        closed_after = time.monotonic() - signalled
    assert closed.value.rcvd is not None, closed.value  # a close frame, not a dropped connection
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "server shutting down")
    assert closed_after < 3.0  # the grace period is 30 s
    assert wait_for_file(marker, timeout=5)["code"] == 1001  # the application heard it as a close
    assert server.wait(10) == 0  # nothing else to wait for: the server is gone long before 30 s
    assert time.monotonic() - signalled < 10
