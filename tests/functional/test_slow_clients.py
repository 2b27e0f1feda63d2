"""Slow and vanishing clients: head timeout (slowloris), body timeout, disconnects mid-response."""

from __future__ import annotations

import socket
import time

import pytest
import requests

from tests.conftest import read_until_close, request_bytes, wait_until


@pytest.fixture(scope="module")
def server(module_greenserve):
    return module_greenserve(
        "--header-timeout", "1", "--client-timeout", "1", "--keep-alive", "2", "probe:app"
    )


def _served(server) -> bool:
    return requests.get(server.url + "/list", timeout=5).content == b"abcdef"


def test_slowloris_head_gets_408(server):
    head = b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
    started = time.monotonic()
    reply = b""
    with server.connect() as sock:
        sock.settimeout(0.3)
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            try:
                reply = sock.recv(65536)
            except TimeoutError:
                continue  # one byte every 0.3 s
            break
        rest, closed = read_until_close(sock, 3)
    elapsed = time.monotonic() - started
    reply += rest
    assert reply.startswith(b"HTTP/1.1 408 "), reply
    assert closed
    assert elapsed < 2.5, elapsed
    assert _served(server)


def test_silent_connection_closed_after_header_timeout(server):
    with server.connect() as sock:
        started = time.monotonic()
        data, closed = read_until_close(sock, 4)
    assert closed
    assert time.monotonic() - started < 2.5
    assert data in (b"",) or data.startswith(b"HTTP/1.1 408 ")


def test_partial_head_after_keep_alive_request_gets_408(server):
    with server.connect() as sock:
        sock.sendall(request_bytes("GET", "/list"))
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET /list HTTP/1.1\r\nHo")
        started = time.monotonic()
        data, closed = read_until_close(sock, 4)
    assert closed
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert time.monotonic() - started < 2.5


def test_stalled_body_dropped_after_client_timeout(server):
    with server.connect() as sock:
        sock.sendall(request_bytes("POST", "/echo?stalled", {"Content-Length": "100"}) + b"0123456789")
        started = time.monotonic()
        data, closed = read_until_close(sock, 5)
    elapsed = time.monotonic() - started
    assert closed
    assert 0.5 < elapsed < 3, elapsed
    assert b"0123456789" not in data  # never echoed as if complete
    assert data == b"" or data.startswith(b"HTTP/1.1 408 ")
    assert _served(server)


def test_client_disconnect_mid_response_calls_close(server, tmp_path):
    marker = tmp_path / "closed"
    with server.connect() as sock:
        sock.sendall(request_bytes("GET", f"/stream?chunks=100000&size=65536&delay=0.01&marker={marker}"))
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    assert wait_until(marker.exists, 5), "the iterable's close() was not called"
    assert marker.read_text().startswith("closed after")
    assert _served(server)


def test_client_disconnect_before_response_calls_close(server, tmp_path):
    marker = tmp_path / "closed-early"
    with server.connect() as sock:
        sock.sendall(request_bytes("GET", f"/stream?chunks=50&size=100&delay=0.05&marker={marker}"))
    assert wait_until(marker.exists, 8), "the iterable's close() was not called"
    assert _served(server)


def test_client_that_never_reads_is_dropped(server, tmp_path):
    """A response the client does not read: the server gives up after --client-timeout."""
    marker = tmp_path / "closed-unread"
    with server.connect() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(request_bytes("GET", f"/stream?chunks=100000&size=65536&marker={marker}"))
        started = time.monotonic()
        assert wait_until(marker.exists, 6), "the server kept waiting for a client that does not read"
        elapsed = time.monotonic() - started
    assert elapsed > 0.5
    assert _served(server)
