"""WSGI handlers written for gevent-websocket (``environ["wsgi.websocket"]``), unchanged,
driven by the ``websockets`` client.

They run twice: with gevent-websocket installed (its ``WebSocketError`` is
what a send after close raises, and its ``Resource`` framework works) and
with it hidden (greenserve raises its own ``ClientDisconnected``, an
``OSError`` like ``WebSocketError``).
"""

from __future__ import annotations

import pytest
import requests
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus
from websockets.sync.client import connect

from tests.conftest import wait_until
from tests.websocket_apps.conftest import VARIANTS, WITH_GEVENT_WEBSOCKET, serve, variant_env, ws_url


@pytest.fixture(scope="module", params=VARIANTS)
def variant(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def server(module_greenserve, variant, hidden_gevent_websocket):
    return serve(module_greenserve, "gws_handler:app", env=variant_env(variant, hidden_gevent_websocket))


def ws(server, path: str = "/echo", **kwargs):
    options = {"open_timeout": 5, "close_timeout": 5, "proxy": None, "ping_interval": None, **kwargs}
    return connect(ws_url(server, path), **options)


def events(server) -> list[dict]:
    return requests.get(server.url + "/events", timeout=5).json()["events"]


def new_events(server, before: int, count: int) -> list[dict]:
    """The ``count`` events recorded after the first ``before`` (waiting for them)."""
    found = wait_until(lambda: len(events(server)) >= before + count, timeout=5)
    assert found, events(server)
    return events(server)[before : before + count]


def test_text_and_binary_messages(server):
    before = len(events(server))
    with ws(server, "/echo?x=1", origin="http://example.test") as conn:
        conn.send("héllo")
        assert conn.recv(timeout=5) == "héllo"
        conn.send(b"\x00\xffbytes")
        assert conn.recv(timeout=5) == b"\x00\xffbytes"
        conn.send("binary:as bytes")  # ws.send(text, binary=True): a binary frame
        assert conn.recv(timeout=5) == b"as bytes"
        big = bytes(range(256)) * 4096  # 1 MiB
        conn.send(big)
        assert conn.recv(timeout=5) == big
    opened = new_events(server, before, 1)[0]
    assert opened == {"event": "open", "path": "/echo", "version": "13", "origin": "http://example.test"}


def test_client_close_ends_the_loop(server, variant):
    before = len(events(server))
    with ws(server) as conn:
        conn.send("x")
        assert conn.recv(timeout=5) == "x"
    closed, again = new_events(server, before + 1, 2)
    assert closed == {"event": "receive returned None"}
    # Like gevent-websocket: None once, then receive() raises instead of returning None forever.
    assert again["event"] == "receive after close"
    assert again["error"]["oserror"]
    if variant == WITH_GEVENT_WEBSOCKET:
        assert again["error"]["type"] == "WebSocketError"


@pytest.mark.parametrize("code", [1000, 4001])
def test_server_close_with_code_then_send_fails(server, variant, code):
    before = len(events(server))
    with ws(server) as conn:
        conn.send(f"close:{code}")
        with pytest.raises((ConnectionClosedOK, ConnectionClosedError)) as info:
            conn.recv(timeout=5)
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (code, "bye")
    after = new_events(server, before + 1, 1)[0]
    assert after["event"] == "send after close"
    assert after["closed"] is True
    assert after["error"]["oserror"]
    if variant == WITH_GEVENT_WEBSOCKET:
        assert (after["error"]["module"], after["error"]["type"]) == (
            "geventwebsocket.exceptions",
            "WebSocketError",
        )
    else:
        assert after["error"]["type"] == "ClientDisconnected"


def test_plain_response_declines_the_upgrade(server):
    with pytest.raises(InvalidStatus) as info:
        ws(server, "/deny")
    assert info.value.response.status_code == 403
    assert info.value.response.body == b"forbidden"
    assert requests.get(server.url + "/", timeout=5).text == "plain HTTP"


def test_application_error_closes_with_1011_and_is_logged(server):
    with ws(server, "/fail") as conn:
        assert conn.recv(timeout=5) == "failing"
        with pytest.raises(ConnectionClosedError) as info:
            conn.recv(timeout=5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1011
    server.wait_for("RuntimeError: the handler failed")


def test_gevent_websocket_resource_application(server, variant):
    if variant != WITH_GEVENT_WEBSOCKET:
        pytest.skip("geventwebsocket.resource needs gevent-websocket")
    before = len(events(server))
    with ws(server, "/app") as conn:
        conn.send("through Resource")
        assert conn.recv(timeout=5) == "through Resource"
    # WebSocketApplication.handle() loops until receive() raises: it must end.
    assert new_events(server, before, 2) == [{"event": "app open"}, {"event": "app close"}]
    assert requests.get(server.url + "/", timeout=5).text == "plain HTTP"


def test_ws_max_size_applies_to_wsgi_websocket(greenserve):
    server = serve(greenserve, "--ws-max-size", "1K", "gws_handler:app")
    with ws(server) as conn:
        conn.send("x" * 1024)
        assert conn.recv(timeout=5) == "x" * 1024
        conn.send("x" * 1025)
        with pytest.raises(ConnectionClosedError) as info:
            conn.recv(timeout=5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    # The handler's receive() returned None: its loop ended.
    assert wait_until(lambda: {"event": "receive returned None"} in events(server), timeout=5)


def test_gunicorn_command_line_with_gevent_websocket_worker(greenserve):
    """``-k geventwebsocket.gunicorn.workers.GeventWebSocketWorker``, kept from a gunicorn
    command line: accepted, noted at INFO, and the WebSocket routes work."""
    worker = "geventwebsocket.gunicorn.workers.GeventWebSocketWorker"
    server = serve(greenserve, "-k", worker, "gws_handler:app")
    line = server.wait_for("worker class")
    assert "[INFO]" in line and "environ['wsgi.websocket']" in line, line
    with ws(server) as conn:
        conn.send("from a gunicorn command line")
        assert conn.recv(timeout=5) == "from a gunicorn command line"
