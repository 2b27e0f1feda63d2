"""Malformed and oversized requests, end to end over raw sockets, with both parser backends.

A request that breaks HTTP/1.1 gets its error status, the connection is
closed (so nothing smuggled behind it is served), and the application is
never called for it (``/calls`` on the probe app lists what it saw).
"""

from __future__ import annotations

import json
import re

import pytest
import requests

from tests.conftest import ResponseReader, read_until_close, request_bytes

BACKENDS = ["h11", "httptools"]

#: A chunked POST with an empty body, for the Transfer-Encoding value given.
TE = b"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: %s\r\n\r\n0\r\n\r\n"

LIMITS = (
    "--limit-request-line",
    "256",
    "--limit-request-fields",
    "10",
    "--limit-request-field-size",
    "200",
    "--max-body-size",
    "1000",
)


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, module_greenserve):
    return module_greenserve("--http", request.param, *LIMITS, "probe:app")


def _calls(server) -> list[str]:
    return requests.get(server.url + "/calls", timeout=5).json()


def _exchange(server, data: bytes, timeout: float = 5.0) -> tuple[int, bytes, bool]:
    """Send ``data`` plus a valid pipelined request; (status, response, closed)."""
    smuggled = request_bytes("GET", "/smuggled")
    with server.connect() as sock:
        sock.sendall(data + smuggled)
        reply, closed = read_until_close(sock, timeout)
    assert reply.startswith(b"HTTP/1.1 "), reply
    status = int(reply[9:12])
    return status, reply, closed


def _responses(reply: bytes) -> int:
    """How many responses (status lines) ``reply`` holds."""
    return len(re.findall(rb"(?:^|\r\n)HTTP/1\.1 \d{3} ", reply))


def _assert_rejected(server, data: bytes, status: int, marker: str) -> bytes:
    got, reply, closed = _exchange(server, data)
    assert got == status, reply
    assert closed, "the connection must be closed after a protocol error"
    assert _responses(reply) == 1, "nothing after the error may be answered"
    assert b"\r\nConnection: close\r\n" in reply
    calls = _calls(server)
    assert not [call for call in calls if marker in call or "/smuggled" in call], calls
    return reply


def _marker(request, name: str) -> str:
    return f"/{name}-{request.node.callspec.params['server']}"


@pytest.mark.parametrize(
    ("name", "template"),
    [
        (
            "cl-te",
            b"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "te-cl",
            b"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Length: 5\r\n\r\n0\r\n\r\n",
        ),
        ("two-cl", b"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
        ("cl-list", b"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\n\r\nab"),
        ("cl-sign", b"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\nab"),
        ("te-gzip-last", TE % b"chunked, gzip"),
        ("te-xchunked", TE % b"xchunked"),
        ("te-twice", TE % b"chunked, chunked"),
        ("te-http10", b"POST {path} HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("obs-fold", b"GET {path} HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n  b\r\n\r\n"),
        ("obs-fold-tab", b"GET {path} HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n\tb\r\n\r\n"),
        ("bare-lf", b"GET {path} HTTP/1.1\nHost: x\n\n"),
        ("bare-lf-mixed", b"GET {path} HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n"),
        ("bare-cr", b"GET {path} HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n"),
        ("nul-value", b"GET {path} HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n"),
        ("nul-target", b"GET {path}\x00 HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("space-before-colon", b"GET {path} HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n"),
        ("no-host", b"GET {path} HTTP/1.1\r\nX-A: b\r\n\r\n"),
        ("two-hosts", b"GET {path} HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"),
        ("bad-version", b"GET {path} HTTP/1.x\r\nHost: x\r\n\r\n"),
        ("lowercase-version", b"GET {path} http/1.1\r\nHost: x\r\n\r\n"),
        ("http09-version", b"GET {path} HTTP/0.9\r\nHost: x\r\n\r\n"),
        ("method-not-token", b"G(T {path} HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("space-in-target", b"GET {path} x HTTP/1.1\r\nHost: x\r\n\r\n"),
    ],
)
def test_malformed_head_is_400(server, request, name, template):
    path = _marker(request, name)
    reply = _assert_rejected(server, template.replace(b"{path}", path.encode()), 400, path)
    assert b"Traceback" not in reply


@pytest.mark.parametrize(
    ("name", "template", "status"),
    [
        # RFC 9112 6.1: a transfer coding the server does not decode (chunked is last, so
        # the body's end is known, but not what it means).
        ("te-gzip", TE % b"gzip, chunked", 501),
        # RFC 9110 9.1: methods are case-sensitive; one the server does not recognise is 501.
        ("method-lowercase", b"get {path} HTTP/1.1\r\nHost: x\r\n\r\n", 501),
        ("method-unknown", b"BREW {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\ntea", 501),
        # RFC 9110 15.6.6: a well-formed version of a major version other than 1.
        ("http20-request-line", b"GET {path} HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        ("http30-request-line", b"GET {path} HTTP/3.0\r\nHost: x\r\n\r\n", 505),
    ],
)
def test_well_formed_but_not_implemented(server, request, name, template, status):
    """5xx answers to requests the server understands but does not implement, from both parsers."""
    path = _marker(request, name)
    reply = _assert_rejected(server, template.replace(b"{path}", path.encode()), status, path)
    assert b"Traceback" not in reply


@pytest.mark.parametrize(
    "method", ["BASELINE-CONTROL", "VERSION-CONTROL", "LABEL", "PURGE", "QUERY", "M-SEARCH"]
)
def test_registered_methods_reach_the_application(server, method):
    """The IANA registry and llhttp's extra methods reach the app, whichever parser reads them."""
    with server.connect() as sock:
        sock.sendall(request_bytes(method, "/environ", {"Connection": "close"}))
        reply, _ = read_until_close(sock)
    assert reply.startswith(b"HTTP/1.1 200 "), reply
    assert json.loads(reply.partition(b"\r\n\r\n")[2])["REQUEST_METHOD"] == method


def test_later_http1_minor_version_is_served_as_http11(server):
    """RFC 9110 2.5: HTTP/1.2 is processed as HTTP/1.1 (persistent, Host required)."""
    with server.connect() as sock:
        sock.sendall(request_bytes("GET", "/environ", version="HTTP/1.2") + request_bytes("GET", "/list"))
        reader = ResponseReader(sock)
        first, second = reader.read(), reader.read()
    assert first.status == 200
    assert first.getheader("Connection") is None  # kept alive, as HTTP/1.1
    assert json.loads(first.body)["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert (second.status, second.body) == (200, b"abcdef")


def test_optional_whitespace_around_framing_fields(server):
    """Tabs and spaces around Transfer-Encoding, Content-Length, Connection and Host values are OWS."""
    chunked = (
        b"POST /echo HTTP/1.1\r\nHost: \t x \t\r\nTransfer-Encoding:\t chunked \t\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n"
    )
    length = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \t 5 \t\r\n\r\nworld"
    last = b"GET /environ HTTP/1.1\r\nHost:\tx\t\r\nConnection:  keep-alive ,\t close \r\n\r\n"
    with server.connect() as sock:
        sock.sendall(chunked + length + last)
        reader = ResponseReader(sock)
        responses = [reader.read() for _ in range(3)]
        closed = reader.at_eof()
    assert [(r.status, r.body) for r in responses[:2]] == [(200, b"hello"), (200, b"world")]
    environ = json.loads(responses[2].body)
    assert environ["HTTP_HOST"] == "x"
    assert environ["HTTP_CONNECTION"] == "keep-alive ,\t close"  # no OWS around the value
    assert responses[2].getheader("Connection") == "close"
    assert closed


def test_options_asterisk_reaches_the_application(server):
    """OPTIONS * is passed on (PATH_INFO '', RAW_URI '*'); the probe app has no route for it."""
    with server.connect() as sock:
        sock.sendall(request_bytes("OPTIONS", "*", {"Connection": "close"}))
        reply, _ = read_until_close(sock)
    assert reply.startswith(b"HTTP/1.1 404 "), reply
    assert reply.endswith(b"not found")
    assert "*" in _calls(server)


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("chunk-size-hex", b"zz\r\nhello\r\n0\r\n\r\n"),
        ("chunk-size-space", b"5 \r\nhello\r\n0\r\n\r\n"),
        ("chunk-size-sign", b"+5\r\nhello\r\n0\r\n\r\n"),
        ("chunk-size-0x", b"0x5\r\nhello\r\n0\r\n\r\n"),
        ("chunk-no-crlf", b"5\r\nhelloX\r\n0\r\n\r\n"),
        ("chunk-bare-lf", b"5\nhello\n0\n\n"),
    ],
)
def test_bad_chunked_body_is_400_when_the_app_reads(server, request, name, body):
    path = _marker(request, name)
    head = f"POST /echo?{path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    status, reply, closed = _exchange(server, head + body)
    assert status == 400, reply
    assert closed
    assert _responses(reply) == 1


def test_bad_chunk_size_sent_with_the_head_does_not_reach_the_app(server, request):
    """The issue: a bad chunk size gets 400 and the application is not called.

    Here the broken chunk line arrives in the same packet as the head, so the
    server knows the request is invalid before it calls the application.
    """
    path = _marker(request, "chunk-first-packet")
    data = f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
    _assert_rejected(server, data.encode(), 400, path)


def test_request_line_too_long_is_414(server, request):
    path = _marker(request, "long") + "a" * 300
    _assert_rejected(server, request_bytes("GET", path), 414, path[:20])


def test_request_line_too_long_arriving_slowly_is_414(server, request):
    """A request line that never ends is refused once it passes the limit."""
    path = _marker(request, "endless") + "a" * 2000
    with server.connect() as sock:
        sock.sendall(f"GET {path}".encode())
        reply, closed = read_until_close(sock)
    assert reply.startswith(b"HTTP/1.1 414 "), reply
    assert closed


def test_too_many_fields_is_431(server, request):
    path = _marker(request, "fields")
    headers = [(f"X-Field-{i}", "v") for i in range(11)]
    _assert_rejected(server, request_bytes("GET", path, headers), 431, path)


def test_field_too_large_is_431(server, request):
    path = _marker(request, "fieldsize")
    _assert_rejected(server, request_bytes("GET", path, {"X-Big": "v" * 300}), 431, path)


def test_fields_within_limits_are_fine(server):
    headers = [(f"X-Field-{i}", "v" * 150) for i in range(8)]
    with server.connect() as sock:
        sock.sendall(request_bytes("GET", "/list", [*headers, ("Connection", "close")]))  # + Host = 10
        reply, _ = read_until_close(sock)
    assert reply.startswith(b"HTTP/1.1 200 "), reply
    assert reply.endswith(b"abcdef")


def test_body_too_large_content_length_is_413(server, request):
    path = _marker(request, "big-cl")
    reply = _assert_rejected(server, request_bytes("POST", path, body=b"x" * 2000), 413, path)
    assert reply.startswith(b"HTTP/1.1 413 ")


def test_body_too_large_without_sending_it(server, request):
    """The 413 comes at once, from the head alone."""
    path = _marker(request, "big-cl-head")
    data = request_bytes("POST", path, {"Content-Length": "1000000"})
    status, _, closed = _exchange(server, data)
    assert status == 413
    assert closed


def test_body_too_large_chunked_is_413(server, request):
    path = _marker(request, "big-chunked")
    body = b"".join(b"100\r\n" + b"y" * 256 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"
    data = f"POST /echo?{path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + body
    status, reply, closed = _exchange(server, data)
    assert status == 413, reply
    assert closed
    assert b"yyyy" not in reply


def test_body_at_the_limit_is_accepted(server):
    response = requests.post(server.url + "/echo", data=b"z" * 1000, timeout=5)
    assert response.status_code == 200
    assert response.content == b"z" * 1000


def test_http2_preface_is_a_clean_505(server):
    start = len(server.lines)
    status, reply, closed = _exchange(server, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert status == 505, reply
    assert closed
    # Let the server log whatever it logs, then check there is no traceback.
    assert requests.get(server.url + "/list", timeout=5).status_code == 200
    assert "Traceback" not in "\n".join(server.lines[start:])


def test_http09_request_is_rejected(server):
    with server.connect() as sock:
        sock.sendall(b"GET /\r\n\r\n")
        reply, closed = read_until_close(sock)
    assert reply.startswith(b"HTTP/1.1 400 "), reply
    assert closed


def test_header_names_with_underscores_are_dropped(server):
    data = request_bytes(
        "GET",
        "/environ",
        [
            ("X-Forwarded-For", "1.1.1.1"),
            ("X_Forwarded_For", "6.6.6.6"),
            ("X_Custom", "no"),
            ("X-Real", "yes"),
        ],
    )
    with server.connect() as sock:
        sock.sendall(data)
        reply, _ = read_until_close(sock, 2)
    environ = json.loads(reply.partition(b"\r\n\r\n")[2])
    assert environ["HTTP_X_REAL"] == "yes"
    assert "HTTP_X_CUSTOM" not in environ
    assert "6.6.6.6" not in json.dumps(environ)


def test_repeated_headers_are_joined(server):
    data = request_bytes(
        "GET",
        "/environ",
        [("Accept", "text/html"), ("X-Multi", "a"), ("Accept", "text/plain"), ("X-Multi", "b, c")],
    )
    with server.connect() as sock:
        sock.sendall(data)
        reply, _ = read_until_close(sock, 2)
    environ = json.loads(reply.partition(b"\r\n\r\n")[2])
    assert environ["HTTP_ACCEPT"] == "text/html, text/plain"
    assert environ["HTTP_X_MULTI"] == "a, b, c"


def test_server_keeps_serving_after_rejections(server):
    for _ in range(3):
        _exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\nX: \x00\r\n\r\n")
    assert requests.get(server.url + "/list", timeout=5).content == b"abcdef"
