"""Flask-Sock on greenserve, driven by simple-websocket's own client.

Flask-Sock hands the route simple-websocket's ``Server``, which finds
``environ["gunicorn.socket"]`` and speaks WebSocket on it itself, as it
does on gunicorn; greenserve closes the connection when the route returns.
"""

from __future__ import annotations

import signal
import time

import pytest
import requests
import simple_websocket

from tests.websocket_apps.conftest import serve, ws_url


@pytest.fixture(scope="module")
def sock_server(module_greenserve):
    return serve(module_greenserve, "sock_echo:app")


def connect(server) -> simple_websocket.Client:
    return simple_websocket.Client.connect(ws_url(server, "/echo"))


def test_echo_text_and_binary(sock_server):
    client = connect(sock_server)
    try:
        client.send("héllo")
        assert client.receive(timeout=5) == "héllo"
        client.send(b"\x00\xff binary")
        assert client.receive(timeout=5) == b"\x00\xff binary"
        big = bytes(range(256)) * 2048  # 512 KiB, many TCP segments and frames of the reader
        client.send(big)
        assert client.receive(timeout=5) == big
        for i in range(50):
            client.send(f"m{i}")
        assert [client.receive(timeout=5) for _ in range(50)] == [f"m{i}" for i in range(50)]
    finally:
        client.close()


def test_close_from_the_server_side(sock_server):
    client = connect(sock_server)
    client.send("close")
    with pytest.raises(simple_websocket.ConnectionClosed) as info:
        client.receive(timeout=5)
    assert (info.value.reason, info.value.message) == (4000, "bye")
    client.thread.join(5)  # the client's reader ends when the server closes the TCP connection
    assert not client.thread.is_alive()


def test_client_close_ends_the_route_and_frees_its_connection(greenserve):
    """A WebSocket holds one of --worker-connections until its route returns.

    With two slots, a route that outlived its client's close would leave the
    plain HTTP request after the second session waiting for a slot (the
    5 s timeout then fails the test).
    """
    server = serve(greenserve, "--worker-connections", "2", "sock_echo:app")
    for _ in range(4):
        client = connect(server)
        client.send("ping")
        assert client.receive(timeout=5) == "ping"
        client.close()
        assert requests.get(server.url + "/", timeout=5).text == "plain HTTP"
    assert "Traceback" not in server.log


def test_request_timeout_does_not_cut_an_open_websocket(greenserve):
    server = serve(greenserve, "--request-timeout", "0.5", "sock_echo:app")
    client = connect(server)
    try:
        started = time.monotonic()
        while time.monotonic() - started < 1.5:  # three times --request-timeout, in use all along
            client.send("still here")
            assert client.receive(timeout=5) == "still here"
            time.sleep(0.1)
    finally:
        client.close()
    assert "request-timeout" not in server.log


def test_graceful_stop_closes_with_1001(greenserve):
    server = serve(greenserve, "sock_echo:app")
    client = connect(server)
    client.send("ping")
    assert client.receive(timeout=5) == "ping"
    started = time.monotonic()
    server.send_signal(signal.SIGTERM)
    with pytest.raises(simple_websocket.ConnectionClosed) as info:
        client.receive(timeout=5)
    assert info.value.reason == 1001
    assert server.wait(10) == 0
    assert time.monotonic() - started < 5  # well within --graceful-timeout (10 s here)
    assert "Traceback" not in server.log
