"""HTTP/1.1 semantics through the bridge: keep-alive, pipelining, HEAD, HTTP/1.0
streaming, ``Expect: 100-continue`` and chunked request bodies."""

from __future__ import annotations

import hashlib
import json
import os
import socket

import pytest

from tests.conftest import ResponseReader, read_until_close, recv_until, request_bytes


@pytest.fixture(scope="module")
def server(module_serve):
    return module_serve("--single-process", "raw_app:app")


def test_pipelined_posts_and_gets(server):
    bodies = [os.urandom(n) for n in (1, 1000, 70_000, 0, 300_000)]
    wire = b""
    for body in bodies:
        wire += request_bytes("POST", "/echo", {"Content-Length": str(len(body))}, body)
        wire += request_bytes("GET", "/pid")
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(wire)
        reader = ResponseReader(sock, timeout=10)
        for body in bodies:
            echo = reader.read("POST")
            assert echo.status == 200
            assert echo.body == body
            assert json.loads(reader.read().body)["pid"] == server.proc.pid
        # Still open for more.
        sock.sendall(request_bytes("GET", "/pid"))
        assert reader.read().status == 200


def test_keep_alive_across_streamed_responses(server):
    with socket.create_connection(server.address, timeout=10) as sock:
        reader = ResponseReader(sock)
        for _ in range(3):
            sock.sendall(request_bytes("GET", "/big?key=ka&total=200000&chunk=50000"))
            response = reader.read()
            assert response.getheader("transfer-encoding") == "chunked"
            assert response.body == b"x" * 200_000


def test_chunked_request_body(server):
    payload = os.urandom(500_000)
    pieces = [payload[i : i + 70_000] for i in range(0, len(payload), 70_000)]
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(request_bytes("POST", "/slow-read?delay=0", {"Transfer-Encoding": "chunked"}) + chunked)
        result = json.loads(ResponseReader(sock).read("POST").body)
    assert result["size"] == len(payload)
    assert result["sha256"] == hashlib.sha256(payload).hexdigest()


def test_head_has_no_body(server):
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(request_bytes("HEAD", "/pid") + request_bytes("GET", "/pid"))
        reader = ResponseReader(sock)
        head = reader.read("HEAD")
        get = reader.read()
    assert head.status == 200
    assert head.body == b""
    assert int(head.getheader("content-length")) == len(get.body) > 0


def test_http_10_streaming_is_close_delimited(server):
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(request_bytes("GET", "/big?key=h10&total=100000&chunk=10000", version="HTTP/1.0"))
        data, closed = read_until_close(sock, timeout=5)
    head, _, body = data.partition(b"\r\n\r\n")
    assert closed
    assert head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200")
    assert b"chunked" not in head.lower()
    assert body == b"x" * 100_000


def test_expect_100_continue_when_the_app_reads(server):
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(request_bytes("POST", "/echo", {"Content-Length": "5", "Expect": "100-continue"}))
        interim = recv_until(sock, b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100"), interim
        sock.sendall(b"hello")
        response = ResponseReader(sock).read("POST")
    assert response.body == b"hello"


def test_no_100_continue_when_the_app_does_not_read(server):
    """The app answers without reading the body: no 100 Continue, the client need not send it."""
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(request_bytes("POST", "/pid", {"Content-Length": "1000000", "Expect": "100-continue"}))
        data = recv_until(sock, b"\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200"), data
