"""Tier (b): ``--proxy-protocol`` through the connection's preface seam, with real sockets.

The parser itself is tested on bytes in tests/protocol/test_proxy_protocol.py;
here a worker serves clients that send (or do not send) a preamble.
"""

from __future__ import annotations

import json
import socket
import struct

import pytest

from tests.conftest import ResponseReader, read_until_close, request_bytes
from tests.worker.conftest import run_in_thread


def environ_app(environ, start_response):
    header = environ.get("greenserve.proxy_protocol")
    body = json.dumps(
        {
            "remote": [environ["REMOTE_ADDR"], environ["REMOTE_PORT"]],
            "server": [environ["SERVER_NAME"], environ["SERVER_PORT"]],
            "scheme": environ["wsgi.url_scheme"],
            "forwarded_for": environ.get("HTTP_X_FORWARDED_FOR"),
            "version": header.version if header is not None else None,
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def v2_preamble(source: str, sport: int, dest: str, dport: int, tlvs: bytes = b"") -> bytes:
    addresses = socket.inet_aton(source) + socket.inet_aton(dest) + struct.pack("!HH", sport, dport)
    body = addresses + tlvs
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def ask(h, data: bytes, pieces: int = 1) -> dict:
    """Send ``data`` (in ``pieces`` parts), read one response, return its JSON."""

    def client() -> dict:
        with h.connect() as sock:
            step = max(1, len(data) // pieces)
            for start in range(0, len(data), step):
                sock.sendall(data[start : start + step])
            response = ResponseReader(sock).read()
            assert response.status == 200, response.status
            return json.loads(response.body)

    return run_in_thread(client)


@pytest.mark.parametrize("pieces", [1, 3, 40])
def test_v1_preamble_gives_the_client_address(harness, pieces):
    h = harness(environ_app, proxy_protocol="v1", forwarded_allow_ips="127.0.0.1")
    preamble = b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n"
    seen = ask(h, preamble + request_bytes("GET", "/"), pieces)
    assert seen["remote"] == ["203.0.113.7", "51234"]
    assert seen["server"] == ["192.0.2.1", "443"]
    assert seen["version"] == 1


def test_v2_preamble_and_keep_alive(harness):
    h = harness(environ_app, proxy_protocol="auto")

    def client() -> list:
        with h.connect() as sock:
            sock.sendall(v2_preamble("198.51.100.9", 40000, "192.0.2.1", 8443) + request_bytes("GET", "/a"))
            reader = ResponseReader(sock)
            first = json.loads(reader.read().body)
            sock.sendall(request_bytes("GET", "/b"))  # the preamble applies to the whole connection
            second = json.loads(reader.read().body)
            return [first, second]

    first, second = run_in_thread(client)
    assert first["remote"] == second["remote"] == ["198.51.100.9", "40000"]
    assert first["version"] == 2


def test_forwarded_headers_are_judged_on_the_client_the_preamble_names(harness):
    """The load balancer on 127.0.0.1 is trusted to send the preamble, not the client's headers."""
    h = harness(environ_app, proxy_protocol="v1", forwarded_allow_ips="127.0.0.1")
    preamble = b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 80\r\n"
    forged = request_bytes("GET", "/", {"X-Forwarded-For": "10.9.9.9"})
    seen = ask(h, preamble + forged)
    assert seen["remote"] == ["203.0.113.7", "51234"], "a client must not choose its own address"


def test_a_peer_that_must_send_a_preamble_and_does_not_is_closed(harness):
    h = harness(environ_app, proxy_protocol="v1")

    def client():
        with h.connect() as sock:
            sock.sendall(request_bytes("GET", "/"))
            return read_until_close(sock, 3)

    assert run_in_thread(client) == (b"", True)


def test_a_peer_not_allowed_to_send_a_preamble_is_closed_when_it_does(harness):
    h = harness(environ_app, proxy_protocol="auto", proxy_allow_ips="192.0.2.99")

    def client():
        with h.connect() as sock:
            sock.sendall(b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n" + request_bytes("GET", "/"))
            return read_until_close(sock, 3)

    assert run_in_thread(client) == (b"", True)
    # ... while its plain requests are served, with its own address.
    seen = ask(h, request_bytes("GET", "/"))
    assert seen["remote"][0] == "127.0.0.1"
    assert seen["version"] is None


@pytest.mark.parametrize(
    "preamble",
    [
        b"PROXY TCP4 203.0.113.7 192.0.2.1 51234\r\n",  # a port missing
        b"PROXY TCP4 203.0.113.007 192.0.2.1 51234 443\r\n",  # a leading zero
        b"PROXY TCP6 203.0.113.7 192.0.2.1 51234 443\r\n",  # family mismatch
        b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\n",  # bare LF
    ],
)
def test_a_malformed_preamble_closes_the_connection(harness, preamble):
    h = harness(environ_app, proxy_protocol="v1")

    def client():
        with h.connect() as sock:
            sock.sendall(preamble + request_bytes("GET", "/"))
            return read_until_close(sock, 3)

    assert run_in_thread(client) == (b"", True)
    assert ask(h, b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n" + request_bytes("GET", "/"))["remote"]


def test_v1_only_refuses_a_v2_preamble(harness):
    h = harness(environ_app, proxy_protocol="v1")

    def client():
        with h.connect() as sock:
            sock.sendall(v2_preamble("198.51.100.9", 40000, "192.0.2.1", 8443) + request_bytes("GET", "/"))
            return read_until_close(sock, 3)

    assert run_in_thread(client) == (b"", True)


def test_the_local_command_keeps_the_real_peer(harness):
    """A v2 LOCAL header (the balancer's own health check) keeps the socket's addresses."""
    h = harness(environ_app, proxy_protocol="v2")
    local = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x20, 0x00]) + b"\x00\x00"
    seen = ask(h, local + request_bytes("GET", "/"))
    assert seen["remote"][0] == "127.0.0.1"
    assert seen["version"] == 2
