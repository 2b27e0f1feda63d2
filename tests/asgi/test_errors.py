"""Misbehaving ASGI applications: errors become a 500 or a closed connection, the
error is logged, nothing hangs and the worker keeps serving."""

from __future__ import annotations

import re
import socket
import time

import pytest
import requests

from tests.conftest import ResponseReader, read_until_close, request_bytes


@pytest.fixture(scope="module")
def server(module_serve):
    return module_serve("--single-process", "raw_app:app")


def get(server, path: str) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = requests.get(server.url + path, timeout=5)
    return response, time.monotonic() - started


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/raise-before", "boom before the response started"),
        ("/body-before-start", "http.response.body before http.response.start"),
        ("/start-twice", "http.response.start sent twice"),
        ("/unknown-message", "http.response.bogus"),
        ("/no-response", "ended without sending a response"),
        ("/start-only", "ended without sending a response"),
        ("/bad-status", "invalid http.response.start"),
    ],
)
def test_broken_app_gets_a_500(server, path, logged):
    start = len(server.lines)
    response, elapsed = get(server, path)
    assert response.status_code == 500
    assert elapsed < 2, f"{path} took {elapsed:.1f} s"
    server.wait_for(re.escape(logged), timeout=3, start=start)
    assert any("[ERROR]" in line for line in server.lines[start:]), server.lines[start:]
    # The worker is alive and well.
    assert get(server, "/pid")[0].json()["pid"] == server.proc.pid


def test_exception_mid_stream_closes_the_connection(server):
    start = len(server.lines)
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(request_bytes("GET", "/raise-after"))
        data, closed = read_until_close(sock, timeout=5)
    assert closed, "the connection was left open after the app failed mid-response"
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding: chunked" in head.lower()
    assert b"partial-body" in body
    assert not body.endswith(b"0\r\n\r\n"), "a truncated response must not look complete"
    server.wait_for("boom in the middle of the response", timeout=3, start=start)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(server.url + "/raise-after", timeout=5).content


def test_messages_after_the_end_of_the_response_are_ignored(server):
    """``more_body: False`` ends the response; later body messages are ignored (ASGI spec)."""
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(request_bytes("GET", "/body-after-end") + request_bytes("GET", "/pid"))
        reader = ResponseReader(sock)
        first = reader.read()
        second = reader.read()
    assert first.status == 200
    assert first.body == b"ab"
    assert second.status == 200
    assert b'"pid"' in second.body


def test_404_from_the_app_keeps_the_connection(server):
    with requests.Session() as session:
        for _ in range(3):
            assert session.get(server.url + "/nothing-here", timeout=5).status_code == 404
            assert session.get(server.url + "/pid", timeout=5).status_code == 200
