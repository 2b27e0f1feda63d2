"""The ASGI connection scope the bridge builds, as an app sees it (echoed as JSON)."""

from __future__ import annotations

import http.client
import json
import socket

import pytest

from tests.conftest import ResponseReader, request_bytes


@pytest.fixture(scope="module")
def server(module_serve):
    return module_serve("--single-process", "raw_app:app")


@pytest.fixture(scope="module")
def rooted(module_serve):
    return module_serve("--single-process", "--root-path", "/api", "raw_app:app")


def fetch(server, target: str, headers: list[tuple[str, str]] = (), method: str = "GET", body: bytes = b""):
    """Send one request by hand; returns (scope as JSON, the client's address)."""
    conn = http.client.HTTPConnection(*server.address, timeout=5)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        if body:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        client = conn.sock.getsockname()
        response = conn.getresponse()
        assert response.status == 200, response.read()
        return json.loads(response.read()), client
    finally:
        conn.close()


def b(data: dict | str) -> str:
    """A bytes value as echoed by the app (``{"bytes": latin-1 text}``)."""
    assert isinstance(data, dict) and set(data) == {"bytes"}, data
    return data["bytes"]


def test_scope_is_complete(server):
    scope, client = fetch(
        server,
        "/scope/caf%C3%A9?x=1&y=%20z&x=2",
        [("X-Dup", "first"), ("X-MiXeD-Case", "Value"), ("X-Dup", "second")],
    )
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["asgi"]["spec_version"].startswith("2.")
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/scope/café"
    assert b(scope["raw_path"]) == "/scope/caf%C3%A9"
    assert b(scope["query_string"]) == "x=1&y=%20z&x=2"
    assert scope["root_path"] == ""
    assert scope["types"] == {
        "raw_path": "bytes",
        "query_string": "bytes",
        "path": "str",
        "root_path": "str",
        "client": "tuple",
        "server": "tuple",
        "state": "dict",
    }
    headers = [(b(name), b(value)) for name, value in scope["headers"]]
    assert scope["header_types"] == ["bytes/bytes"]
    assert all(name == name.lower() for name, _ in headers), headers
    # Repeated headers stay separate items, in order; names are lowercased.
    assert [value for name, value in headers if name == "x-dup"] == ["first", "second"]
    assert ("x-mixed-case", "Value") in headers
    assert ("host", "{}:{}".format(*server.address)) in headers
    assert scope["client"] == [client[0], client[1]]
    assert scope["server"] == ["127.0.0.1", server.port]
    # State from the lifespan startup, copied into each request's scope.
    assert scope["state"]["started"] is True
    assert scope["state"]["pid"] == server.proc.pid


def test_percent_encoded_slash_stays_in_raw_path(server):
    scope, _ = fetch(server, "/scope/a%2Fb/%7Euser")
    assert scope["path"] == "/scope/a/b/~user"
    assert b(scope["raw_path"]) == "/scope/a%2Fb/%7Euser"
    assert b(scope["query_string"]) == ""


def test_post_body_and_method(server):
    scope, _ = fetch(server, "/scope/post", [("Content-Type", "text/plain")], method="POST", body=b"payload")
    assert scope["method"] == "POST"
    assert scope["body"] == "payload"
    assert [b(v) for n, v in scope["headers"] if b(n) == "content-length"] == ["7"]


def test_http_10_request(server):
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(request_bytes("GET", "/scope/old", version="HTTP/1.0"))
        response = ResponseReader(sock).read()
    scope = json.loads(response.body)
    assert scope["http_version"] == "1.0"


def test_state_is_a_copy_per_request(server):
    """Each request gets its own shallow copy of the lifespan state (ASGI spec)."""
    first, _ = fetch(server, "/scope/1")
    second, _ = fetch(server, "/scope/2")
    assert first["state"] == second["state"]


def test_root_path(rooted):
    """``--root-path /api``: ``root_path`` is the mount point and ``path`` still the full path.

    The ASGI spec (and uvicorn, hypercorn, asgiref, Starlette, Django) treat
    ``path`` as including ``root_path``: "PATH_INFO can be derived by stripping
    root_path from path".
    """
    scope, _ = fetch(rooted, "/api/scope/caf%C3%A9?q=1")
    assert scope["root_path"] == "/api"
    assert b(scope["raw_path"]) == "/api/scope/caf%C3%A9"
    assert b(scope["query_string"]) == "q=1"
    assert scope["path"] == "/api/scope/café"


@pytest.fixture(scope="module")
def behind_proxy(module_serve):
    return module_serve("--single-process", "--forwarded-allow-ips", "127.0.0.1", "raw_app:app")


def test_each_request_on_a_connection_gets_its_own_scope(behind_proxy):
    """One keep-alive connection: proxy headers, method, path and headers apply to their request only."""
    with socket.create_connection(behind_proxy.address, timeout=5) as sock:
        reader = ResponseReader(sock)
        client = sock.getsockname()
        proxied = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
        sock.sendall(request_bytes("GET", "/scope/one?a=1", proxied))
        first = json.loads(reader.read().body)
        sock.sendall(request_bytes("POST", "/scope/two", {"X-Other": "2"}, body=b"xy"))
        second = json.loads(reader.read().body)
    assert (first["method"], first["path"], b(first["query_string"])) == ("GET", "/scope/one", "a=1")
    assert first["client"][0] == "203.0.113.9"
    assert first["scheme"] == "https"
    assert (second["method"], second["path"], b(second["query_string"])) == ("POST", "/scope/two", "")
    assert second["client"] == [client[0], client[1]]
    assert second["scheme"] == "http"
    assert second["body"] == "xy"
    names = [b(name) for name, _ in second["headers"]]
    assert "x-other" in names and "x-forwarded-for" not in names


@pytest.fixture(scope="module")
def behind_balancer(module_serve):
    return module_serve("--single-process", "--proxy-protocol", "v1", "raw_app:app")


def test_proxy_protocol_names_the_scope_client_and_server(behind_balancer):
    """A PROXY v1 preamble replaces the socket's peer in ``client`` (an int port) and ``server``."""
    with socket.create_connection(behind_balancer.address, timeout=5) as sock:
        reader = ResponseReader(sock)
        sock.sendall(b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 8443\r\n" + request_bytes("GET", "/scope/a"))
        first = json.loads(reader.read().body)
        sock.sendall(request_bytes("GET", "/scope/b"))  # the preamble holds for the whole connection
        second = json.loads(reader.read().body)
    assert first["client"] == second["client"] == ["203.0.113.7", 51234]
    assert first["server"] == second["server"] == ["192.0.2.1", 8443]
