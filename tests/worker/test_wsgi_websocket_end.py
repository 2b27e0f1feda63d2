"""Tier (b): how a WSGI application's WebSocket ends when the application returns or fails.

The worker's own WebSocket (``environ["wsgi.websocket"]``) is tracked by the
server (for the 1001 of a graceful stop) until the application's request
ends: whatever way it ends, the server must forget it and close the socket.
"""

from __future__ import annotations

import sys

import gevent
import pytest
from websockets.sync.client import connect

from greenserve.errors import ClientDisconnected
from tests.worker.conftest import start_in_thread


def wait_for(predicate, timeout: float = 5.0) -> bool:
    """Serve (gevent.sleep) until ``predicate()`` is true or ``timeout`` passes."""
    with gevent.Timeout(timeout, False):
        while not predicate():
            gevent.sleep(0.005)
    return bool(predicate())


@pytest.fixture
def without_gevent_websocket(monkeypatch):
    """As if gevent-websocket were not installed: greenserve raises its own ClientDisconnected."""
    monkeypatch.setitem(sys.modules, "geventwebsocket", None)
    monkeypatch.setitem(sys.modules, "geventwebsocket.exceptions", None)


def test_an_error_from_the_websocket_itself_still_ends_it(harness, without_gevent_websocket):
    """receive() after the end raises ClientDisconnected, which the connection re-raises:
    the transport must not stay tracked (and its greenlets alive) for the worker's lifetime."""
    errors: list[BaseException] = []

    def app(environ, start_response):
        ws = environ["wsgi.websocket"]
        while ws.receive() is not None:
            pass
        try:
            ws.receive()
        except ClientDisconnected as exc:
            errors.append(exc)
            raise

    h = harness(app)
    host, port = h.address

    def client() -> None:
        with connect(f"ws://{host}:{port}/", open_timeout=5, close_timeout=5, proxy=None) as conn:
            conn.send("one message")

    thread, result = start_in_thread(client)
    assert wait_for(lambda: not thread.is_alive()), "the client did not finish"
    assert "error" not in result, result
    assert wait_for(lambda: errors and not h.server.connections), h.server.connections
    assert h.server.websockets == set()
