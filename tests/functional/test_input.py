"""``wsgi.input``: the ways an application reads a request body, large bodies, unread bodies."""

from __future__ import annotations

import hashlib
import json
import os
import time

import pytest
import requests

from tests.conftest import ResponseReader, read_until_close, request_bytes

BODY = b"line one\nline two\n\nlast line without newline"


@pytest.fixture(scope="module")
def server(module_greenserve):
    return module_greenserve("--client-timeout", "5", "probe:app")


def _chunked(body: bytes, size: int) -> bytes:
    out = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size)
    )
    return out + b"0\r\n\r\n"


@pytest.mark.parametrize("framing", ["length", "chunked"])
@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("all", [BODY]),
        ("n", [BODY[i : i + 3] for i in range(0, len(BODY), 3)]),
        ("readline", [b"line one\n", b"line two\n", b"\n", b"last line without newline"]),
        (
            "readline-n",
            [
                b"line",
                b" one",
                b"\n",
                b"line",
                b" two",
                b"\n",
                b"\n",
                b"last",
                b" lin",
                b"e wi",
                b"thou",
                b"t ne",
                b"wlin",
                b"e",
            ],
        ),
        ("readlines", [b"line one\n", b"line two\n", b"\n", b"last line without newline"]),
        ("iter", [b"line one\n", b"line two\n", b"\n", b"last line without newline"]),
    ],
)
def test_read_modes(server, mode, expected, framing):
    if framing == "length":
        data = request_bytes(
            "POST", f"/read?mode={mode}&n=3" if mode == "n" else f"/read?mode={mode}", body=BODY
        )
    else:
        # Small chunks so reads cross chunk boundaries.
        target = f"/read?mode={mode}&n=3" if mode == "n" else f"/read?mode={mode}"
        data = request_bytes("POST", target, {"Transfer-Encoding": "chunked"}, body=_chunked(BODY, 5))
    with server.connect() as sock:
        sock.sendall(data)
        response = ResponseReader(sock).read()
    assert response.status == 200
    assert json.loads(response.body) == [piece.decode() for piece in expected]


def test_read_with_no_body(server):
    response = requests.get(server.url + "/read?mode=all", timeout=5)
    assert response.json() == [""]


def test_body_arriving_in_pieces(server):
    with server.connect() as sock:
        sock.sendall(request_bytes("POST", "/read?mode=readline", {"Content-Length": str(len(BODY))}))
        for i in range(0, len(BODY), 7):
            time.sleep(0.01)
            sock.sendall(BODY[i : i + 7])
        response = ResponseReader(sock).read()
    assert json.loads(response.body) == ["line one\n", "line two\n", "\n", "last line without newline"]


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_large_body_streamed(server, chunked):
    size = 5 * 1024 * 1024 + 123
    payload = os.urandom(size)

    def pieces():
        for i in range(0, size, 256 * 1024):
            yield payload[i : i + 256 * 1024]

    response = requests.post(server.url + "/digest", data=pieces() if chunked else payload, timeout=30)
    assert response.status_code == 200
    assert response.json() == {"length": size, "sha256": hashlib.sha256(payload).hexdigest()}


def test_large_echo(server):
    payload = os.urandom(3 * 1024 * 1024)
    response = requests.post(server.url + "/echo", data=payload, timeout=30)
    assert response.content == payload


def test_unread_small_body_drained_for_the_next_request(server):
    with server.connect() as sock:
        reader = ResponseReader(sock)
        sock.sendall(request_bytes("POST", "/no-read", body=b"a" * 10000) + request_bytes("GET", "/list"))
        assert reader.read().body == b"did not read"
        assert reader.read().body == b"abcdef"
        sock.sendall(
            request_bytes("POST", "/read-some?n=3", body=b"abcdefgh") + request_bytes("GET", "/list")
        )
        assert reader.read().body == b"read abc"
        assert reader.read().body == b"abcdef"


def test_unread_small_chunked_body_drained(server):
    with server.connect() as sock:
        reader = ResponseReader(sock)
        body = _chunked(b"q" * 5000, 1000)
        sock.sendall(
            request_bytes("POST", "/no-read", {"Transfer-Encoding": "chunked"}, body=body)
            + request_bytes("GET", "/list")
        )
        assert reader.read().body == b"did not read"
        assert reader.read().body == b"abcdef"


def test_unread_large_body_closes_but_the_response_arrives(server):
    """Lingering close: the client still sending its body reads the response, not a reset."""
    size = 8 * 1024 * 1024
    with server.connect(timeout=10) as sock:
        sock.sendall(request_bytes("POST", "/no-read", {"Content-Length": str(size)}))
        sent = 0
        chunk = b"z" * 65536
        sock.settimeout(5)
        try:
            while sent < size:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the server stopped reading: expected at some point
        data, closed = read_until_close(sock, 10)
    assert data.startswith(b"HTTP/1.1 200 "), data[:200]
    assert data.endswith(b"did not read")
    assert closed


def test_unread_large_body_with_requests(server):
    response = requests.post(server.url + "/no-read", data=b"z" * (4 * 1024 * 1024), timeout=20)
    assert response.status_code == 200
    assert response.text == "did not read"


def test_partly_read_body_then_next_request_on_new_connection(server):
    response = requests.post(server.url + "/read-some?n=5", data=b"0123456789" * 100000, timeout=20)
    assert response.text == "read 01234"
    assert requests.get(server.url + "/list", timeout=5).text == "abcdef"
