"""HTTP/1.1 behaviour seen by real clients: keep-alive, pipelining, framing, HEAD, 1xx, headers."""

from __future__ import annotations

import email.utils
import http.client
import os
import socket
import time

import pytest
import requests

from tests.conftest import (
    APPS,
    ResponseReader,
    read_until_close,
    recv_until,
    request_bytes,
)

BACKENDS = ["h11", "httptools"]


@pytest.fixture(scope="module", params=BACKENDS)
def server(request, module_greenserve):
    """One probe server per parser backend, shared by the tests of this module."""
    return module_greenserve("--http", request.param, "--keep-alive", "5", "probe:app")


@pytest.fixture(scope="module")
def basic(module_greenserve):
    return module_greenserve("basic:app")


def _conn(server, timeout: float = 5.0) -> http.client.HTTPConnection:
    host, port = server.address
    return http.client.HTTPConnection(host, port, timeout=timeout)


# -- keep-alive ---------------------------------------------------------------


def test_keep_alive_http11_serves_many_requests_on_one_connection(server):
    conn = _conn(server)
    try:
        ports = set()
        for _ in range(5):
            conn.request("GET", "/environ")
            response = conn.getresponse()
            assert response.status == 200
            assert response.getheader("Connection") is None
            ports.add(response.read() and conn.sock.getsockname()[1])
        assert len(ports) == 1
    finally:
        conn.close()


def test_keep_alive_same_server_side_connection(server):
    with server.connect() as sock:
        reader = ResponseReader(sock)
        remote_ports = set()
        for _ in range(3):
            sock.sendall(request_bytes("GET", "/environ"))
            response = reader.read()
            assert response.status == 200
            remote_ports.add(response.body.split(b'"REMOTE_PORT": "')[1].split(b'"')[0])
        assert remote_ports == {str(sock.getsockname()[1]).encode()}


def test_http10_closes_by_default(server):
    with server.connect() as sock:
        sock.sendall(b"GET /list HTTP/1.0\r\n\r\n")
        data, closed = read_until_close(sock, 5)
    assert closed
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nConnection: close" in head
    assert body == b"abcdef"


def test_http10_keep_alive_on_request(server):
    with server.connect() as sock:
        reader = ResponseReader(sock)
        for _ in range(2):
            sock.sendall(b"GET /list HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            response = reader.read()
            assert response.status == 200
            assert response.getheader("Connection") == "keep-alive"
            assert response.getheader("Content-Length") == "6"
            assert response.body == b"abcdef"


def test_keep_alive_zero_disables(greenserve):
    server = greenserve("--keep-alive", "0", "basic:app")
    with server.connect() as sock:
        sock.sendall(request_bytes("GET", "/"))
        data, closed = read_until_close(sock, 5)
    assert closed
    assert b"\r\nConnection: close\r\n" in data
    assert data.endswith(b"Hello, world!")


def test_idle_keep_alive_connection_closed_after_timeout(greenserve):
    server = greenserve("--keep-alive", "0.5", "basic:app")
    with server.connect() as sock:
        reader = ResponseReader(sock)
        sock.sendall(request_bytes("GET", "/"))
        assert reader.read().status == 200
        started = time.monotonic()
        sock.settimeout(5)
        assert reader.at_eof()
        waited = time.monotonic() - started
    assert 0.3 < waited < 2.5, waited


def test_keep_alive_connection_not_closed_before_timeout(greenserve):
    server = greenserve("--keep-alive", "3", "basic:app")
    with server.connect() as sock:
        reader = ResponseReader(sock)
        sock.sendall(request_bytes("GET", "/"))
        assert reader.read().status == 200
        time.sleep(1.0)
        sock.sendall(request_bytes("GET", "/"))
        assert reader.read().body == b"Hello, world!"


def test_keep_alive_connection_survives_a_long_idle(basic):
    """Idle for longer than the server's greenlet parking delay (2 s), within --keep-alive (5 s)."""
    with basic.connect() as sock:
        reader = ResponseReader(sock)
        sock.sendall(request_bytes("GET", "/"))
        assert reader.read().status == 200
        time.sleep(2.6)
        sock.sendall(request_bytes("GET", "/write") + request_bytes("GET", "/"))
        assert reader.read().body == b"written and returned"
        assert reader.read().body == b"Hello, world!"


# -- pipelining ----------------------------------------------------------------


def test_pipelined_requests_answered_in_order(server):
    requests_ = [
        request_bytes("GET", "/read?first"),
        request_bytes("POST", "/echo", body=b"body one"),
        request_bytes("GET", "/list"),
        request_bytes("POST", "/echo", body=b"second body, longer"),
        request_bytes(
            "POST",
            "/echo",
            {"Transfer-Encoding": "chunked"},
            body=b"5\r\nchunk\r\n6\r\ned bod\r\n1\r\ny\r\n0\r\n\r\n",
        ),
        request_bytes("HEAD", "/list"),
        request_bytes("GET", "/echo"),
    ]
    with server.connect() as sock:
        sock.sendall(b"".join(requests_))
        reader = ResponseReader(sock)
        bodies = [reader.read("HEAD" if i == 5 else "GET").body for i in range(len(requests_))]
    assert bodies == [b'[""]', b"body one", b"abcdef", b"second body, longer", b"chunked body", b"", b""]


def test_pipelined_requests_after_unread_bodies(server):
    """The server drains bodies the app did not read, so the next request parses."""
    pipeline = (
        request_bytes("POST", "/no-read", body=b"x" * 1000)
        + request_bytes("POST", "/read-some?n=2", body=b"abcdef")
        + request_bytes("GET", "/list")
    )
    with server.connect() as sock:
        sock.sendall(pipeline)
        reader = ResponseReader(sock)
        assert reader.read().body == b"did not read"
        assert reader.read().body == b"read ab"
        assert reader.read().body == b"abcdef"


def test_many_pipelined_requests(server):
    count = 50
    with server.connect() as sock:
        sock.sendall(b"".join(request_bytes("GET", f"/read?n={i}") for i in range(count)))
        reader = ResponseReader(sock)
        for _ in range(count):
            assert reader.read().status == 200


# -- request bodies -----------------------------------------------------------------


def test_chunked_request_body_http_client(server):
    def body():
        yield b"hello "
        yield b"chunked "
        yield b"world"

    conn = _conn(server)
    try:
        conn.request("POST", "/echo", body=body(), encode_chunked=True)
        response = conn.getresponse()
        assert response.status == 200
        assert response.read() == b"hello chunked world"
    finally:
        conn.close()


def test_chunked_request_body_requests(server):
    def body():
        for i in range(100):
            yield b"%03d," % i

    response = requests.post(server.url + "/digest", data=body(), timeout=5)
    assert response.status_code == 200
    assert response.json()["length"] == 400


def test_chunked_request_with_extensions_and_trailers(server):
    data = request_bytes(
        "POST",
        "/echo",
        {"Transfer-Encoding": "chunked", "Connection": "close"},
        body=b'4;name=value;q="quoted"\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: yes\r\n\r\n',
    )
    with server.connect() as sock:
        sock.sendall(data)
        reply, _ = read_until_close(sock)
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert reply.endswith(b"Wikipedia")


# -- response framing ---------------------------------------------------------------


def test_chunked_response_without_content_length(server):
    with server.connect() as sock:
        sock.sendall(request_bytes("GET", "/stream", {"Connection": "close"}))
        data, closed = read_until_close(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"\r\nTransfer-Encoding: chunked" in head
    assert b"Content-Length" not in head
    assert body == b"7\r\nchunk0\n\r\n7\r\nchunk1\n\r\n7\r\nchunk2\n\r\n0\r\n\r\n"
    assert closed


def test_chunked_response_keeps_connection(server):
    conn = _conn(server)
    try:
        for _ in range(2):
            conn.request("GET", "/stream?chunks=4")
            response = conn.getresponse()
            assert response.getheader("Transfer-Encoding") == "chunked"
            assert response.read() == b"chunk0\nchunk1\nchunk2\nchunk3\n"
    finally:
        conn.close()


def test_close_delimited_response_on_http10(server):
    with server.connect() as sock:
        sock.sendall(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        data, closed = read_until_close(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert closed
    assert b"Transfer-Encoding" not in head
    assert b"Content-Length" not in head
    assert b"\r\nConnection: close" in head
    assert body == b"chunk0\nchunk1\nchunk2\n"


def test_list_body_gets_content_length(server):
    response = requests.get(server.url + "/list", timeout=5)
    assert response.headers["Content-Length"] == "6"
    assert "Transfer-Encoding" not in response.headers
    assert response.content == b"abcdef"


def test_large_list_body(server):
    response = requests.get(server.url + "/blob?size=3000000", timeout=10)
    assert response.headers["Content-Length"] == "3000000"
    assert response.content == b"x" * 3_000_000


@pytest.mark.parametrize("path", ["/list", "/stream", "/blob?size=500000"])
def test_head_has_headers_but_no_body(server, path):
    with server.connect() as sock:
        reader = ResponseReader(sock)
        sock.sendall(request_bytes("HEAD", path) + request_bytes("GET", "/list"))
        head = reader.read("HEAD")
        assert head.status == 200
        assert head.body == b""
        assert head.getheader("Content-Type") == "text/plain" or path.startswith("/blob")
        # The next response starts right after the head: no stray body bytes.
        after = reader.read()
        assert after.body == b"abcdef"
    if path != "/stream":
        get = requests.get(server.url + path, timeout=5)
        assert head.getheader("Content-Length") == get.headers["Content-Length"]


@pytest.mark.parametrize("code", ["204", "304"])
def test_no_body_for_204_and_304(server, code):
    with server.connect() as sock:
        reader = ResponseReader(sock)
        sock.sendall(request_bytes("GET", f"/status?code={code}") + request_bytes("GET", "/list"))
        response = reader.read()
        assert response.status == int(code)
        assert response.body == b""
        assert response.getheader("Transfer-Encoding") is None
        if code == "204":
            assert response.getheader("Content-Length") is None
        assert reader.read().body == b"abcdef"


@pytest.mark.parametrize("path", ["/no-content", "/not-modified"])
def test_no_body_for_204_and_304_list_responses(basic, path):
    with basic.connect() as sock:
        reader = ResponseReader(sock)
        sock.sendall(request_bytes("GET", path) + request_bytes("GET", "/"))
        response = reader.read()
        assert response.status in (204, 304)
        assert response.body == b""
        assert reader.read().body == b"Hello, world!"


# -- Expect: 100-continue -----------------------------------------------------------


def test_expect_continue_sent_when_app_reads(server):
    with server.connect() as sock:
        sock.sendall(request_bytes("POST", "/echo", {"Expect": "100-continue", "Content-Length": "5"}))
        interim = recv_until(sock, b"\r\n\r\n")
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        reader = ResponseReader(sock)
        response = reader.read()
        assert response.status == 200
        assert response.body == b"hello"
        # Still keep-alive.
        sock.sendall(request_bytes("GET", "/list"))
        assert reader.read().body == b"abcdef"


def test_expect_continue_not_sent_when_app_does_not_read(server):
    with server.connect() as sock:
        sock.sendall(
            request_bytes("POST", "/no-read", {"Expect": "100-continue", "Content-Length": "100000"})
        )
        data, closed = read_until_close(sock, 5)
    assert data.startswith(b"HTTP/1.1 200 "), data
    assert b"100 Continue" not in data
    assert data.endswith(b"did not read")
    assert closed


def test_expect_continue_refusal_announces_the_close(server):
    """RFC 9110 10.1.1: a final answer before the body SHOULD say the connection will close.

    The server does close it (the client may never send the body), so the
    response must carry ``Connection: close`` rather than look reusable.
    """
    with server.connect() as sock:
        sock.sendall(request_bytes("POST", "/no-read", {"Expect": "100-continue", "Content-Length": "10"}))
        data, closed = read_until_close(sock, 5)
    assert closed
    assert b"\r\nConnection: close\r\n" in data.partition(b"\r\n\r\n")[0] + b"\r\n"


def test_expect_continue_with_http_client_library(server):
    """httpx/requests do not wait for 100; the server must cope with the body arriving anyway."""
    response = requests.post(
        server.url + "/echo", data=b"eager", headers={"Expect": "100-continue"}, timeout=5
    )
    assert response.status_code == 200
    assert response.content == b"eager"


# -- connection management headers ---------------------------------------------------


def test_client_connection_close(server):
    with server.connect() as sock:
        sock.sendall(request_bytes("GET", "/list", {"Connection": "close"}))
        data, closed = read_until_close(sock)
    assert closed
    assert b"\r\nConnection: close\r\n" in data
    assert data.endswith(b"abcdef")


def test_app_connection_close(server):
    with server.connect() as sock:
        sock.sendall(request_bytes("GET", "/close"))
        data, closed = read_until_close(sock)
    assert closed
    assert data.count(b"Connection:") == 1
    assert b"\r\nConnection: close\r\n" in data
    assert data.endswith(b"bye")


# -- standard headers ------------------------------------------------------------


def test_date_header(basic):
    response = requests.get(basic.url, timeout=5)
    sent = email.utils.parsedate_to_datetime(response.headers["Date"])
    assert response.headers["Date"].endswith(" GMT")
    assert abs(sent.timestamp() - time.time()) < 5


def test_server_header_default(basic):
    assert requests.get(basic.url, timeout=5).headers["Server"] == "greenserve"


def test_server_header_custom(greenserve):
    server = greenserve("--server-header", "Acme/1.0", "basic:app")
    assert requests.get(server.url, timeout=5).headers["Server"] == "Acme/1.0"


def test_no_server_header(greenserve):
    server = greenserve("--no-server-header", "basic:app")
    response = requests.get(server.url, timeout=5)
    assert "Server" not in response.headers
    assert response.text == "Hello, world!"


# -- WSGI response features -----------------------------------------------------------


def test_write_callable(basic):
    response = requests.get(basic.url + "/write", timeout=5)
    assert response.status_code == 200
    assert response.content == b"written and returned"


def test_file_wrapper(basic):
    expected = (APPS / "basic.py").read_bytes()
    response = requests.get(basic.url + "/file", timeout=5)
    assert response.status_code == 200
    assert response.content == expected
    assert response.headers["Content-Length"] == str(len(expected))


def test_file_wrapper_large_file_and_head(server, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    conn = _conn(server, timeout=10)
    try:
        conn.request("GET", f"/file?path={path}")
        response = conn.getresponse()
        assert response.getheader("Content-Length") == str(len(data))
        assert response.read() == data
        conn.request("HEAD", f"/file?path={path}")
        response = conn.getresponse()
        assert response.getheader("Content-Length") == str(len(data))
        assert response.read() == b""
        conn.request("GET", "/list")  # the connection is still in sync
        assert conn.getresponse().read() == b"abcdef"
    finally:
        conn.close()


def test_app_error_is_500_and_server_keeps_serving(greenserve):
    server = greenserve("basic:app")
    start = len(server.lines)
    response = requests.get(server.url + "/error", timeout=5)
    assert response.status_code == 500
    assert "boom" not in response.text  # no traceback for the client
    server.wait_for(r"Traceback", start=start)
    server.wait_for(r"RuntimeError: boom", start=start)
    assert requests.get(server.url, timeout=5).text == "Hello, world!"


def test_header_injection_is_500_and_logged(greenserve):
    server = greenserve("basic:app")
    start = len(server.lines)
    with server.connect() as sock:
        sock.sendall(request_bytes("GET", "/inject", {"Connection": "close"}))
        data, _ = read_until_close(sock)
    head = data.partition(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 500 ")
    assert b"Set-Cookie" not in data
    assert b"X-Bad" not in data
    line = server.wait_for(r"injection", start=start)
    assert "/inject" in line
    assert requests.get(server.url, timeout=5).text == "Hello, world!"


def test_requests_with_absolute_form_target(server):
    with server.connect() as sock:
        sock.sendall(
            b"GET http://example.com/environ?x=1 HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"
        )
        data, _ = read_until_close(sock)
    assert data.startswith(b"HTTP/1.1 200 ")
    assert b'"PATH_INFO": "/environ"' in data
    assert b'"QUERY_STRING": "x=1"' in data


def test_socket_half_close_after_request(server):
    """A client that sends its request and shuts down its side still gets the answer."""
    with server.connect() as sock:
        sock.sendall(request_bytes("GET", "/list"))
        sock.shutdown(socket.SHUT_WR)
        data, closed = read_until_close(sock)
    assert data.startswith(b"HTTP/1.1 200 ")
    assert data.endswith(b"abcdef")
    assert closed
