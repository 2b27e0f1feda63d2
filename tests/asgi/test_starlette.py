"""A Starlette application: routes, a middleware, streamed uploads, lifespan state."""

from __future__ import annotations

import hashlib
import os

import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.asgi.conftest import stop, wait_for_file, ws_url


@pytest.fixture(scope="module")
def server(module_serve):
    return module_serve("--single-process", "starlette_app:app")


def test_routes_and_middleware(server):
    home = requests.get(server.url + "/", timeout=5)
    assert (home.status_code, home.text) == (200, "home")
    assert home.headers["x-stamp"] == "starlette"
    user = requests.get(server.url + "/users/zoë", params={"a": "1", "b": "two"}, timeout=5)
    assert user.json() == {"name": "zoë", "params": {"a": "1", "b": "two"}}
    assert user.headers["x-stamp"] == "starlette"
    assert requests.get(server.url + "/nowhere", timeout=5).status_code == 404
    assert requests.get(server.url + "/upload", timeout=5).status_code == 405


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_large_upload_consumed_as_a_stream(server, chunked):
    payload = os.urandom(8 * 1024 * 1024)
    body = (payload[i : i + 100_000] for i in range(0, len(payload), 100_000)) if chunked else payload
    response = requests.post(server.url + "/upload", data=body, timeout=30)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["size"] == len(payload)
    assert result["sha256"] == hashlib.sha256(payload).hexdigest()
    # Streamed in pieces as they arrived, never the whole body at once.
    assert result["chunks"] > 10
    assert result["biggest"] <= 256 * 1024


def test_lifespan_state_reaches_requests(server):
    first = requests.get(server.url + "/state", timeout=5).json()
    second = requests.get(server.url + "/state", timeout=5).json()
    assert first["greeting"] == "hello from lifespan"
    assert first["boot_pid"] == first["pid"] == server.proc.pid
    assert first["started_at"] <= first["now"]
    # The state is a shallow copy per request: the objects in it are shared.
    assert second["requests"] == first["requests"] + 1
    startup = wait_for_file(server.markers / "starlette-startup.json", timeout=1)
    assert startup["pid"] == server.proc.pid


def test_lifespan_shutdown_runs_on_graceful_stop(serve):
    server = serve("--single-process", "starlette_app:app")
    assert requests.get(server.url + "/state", timeout=5).status_code == 200
    assert not (server.markers / "starlette-shutdown.json").exists()
    assert stop(server) == 0
    shutdown = wait_for_file(server.markers / "starlette-shutdown.json", timeout=1)
    assert shutdown["pid"] == server.proc.pid
    assert "ASGI lifespan shutdown complete" in server.log


def test_request_url_under_root_path(serve):
    """``--root-path /api``: Starlette builds ``request.url`` from ``scope["path"]``,
    which must therefore include the root path."""
    server = serve("--single-process", "--root-path", "/api", "starlette_app:app")
    response = requests.get(server.url + "/api/url", timeout=5)
    assert response.status_code == 200, response.text
    urls = response.json()
    assert urls["base_url"] == server.url + "/api/"
    assert urls["url_for"] == server.url + "/api/users/x"
    assert urls["url"] == server.url + "/api/url"


def test_websocket_route(server):
    with connect(ws_url(server, "/ws"), subprotocols=["chat"], open_timeout=5, proxy=None) as ws:
        assert ws.subprotocol == "chat"
        ws.send("hello")
        assert ws.recv(timeout=5) == "HELLO"


def test_websocket_denial_response(server):
    """Starlette sends a denial response only when the server advertises the
    ``websocket.http.response`` extension in ``scope["extensions"]``; greenserve
    implements the extension, so it should advertise it."""
    with pytest.raises(InvalidStatus) as denied:
        connect(ws_url(server, "/ws-deny"), open_timeout=5, proxy=None)
    assert denied.value.response.status_code == 401
    assert denied.value.response.body == b"no token"
