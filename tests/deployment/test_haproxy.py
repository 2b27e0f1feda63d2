"""HAProxy in TCP mode in front of greenserve, passing the client's address with the PROXY protocol.

One HAProxy, two frontends: one sends the version 1 header (``send-proxy``),
the other version 2 (``send-proxy-v2``), both to one greenserve started with
``--proxy-protocol auto --proxy-allow-from 127.0.0.1``; health checks send
the header too (``check-send-proxy``, with an HTTP check). The client connects from 127.0.0.2, so
the address HAProxy reports differs from HAProxy's own 127.0.0.1.
"""

from __future__ import annotations

import json
import socket

import pytest

from tests.conftest import ResponseReader, read_until_close, request_bytes

from .conftest import APPS

pytestmark = pytest.mark.timeout(60)

#: The test's haproxy.cfg: docs/deployment.md shows the same backend lines.
HAPROXY_CFG = """\
defaults
    mode tcp
    timeout connect 2s
    timeout client 30s
    timeout server 30s

frontend via_v1
    bind fd@{{fd0}}
    default_backend greenserve_v1

frontend via_v2
    bind fd@{{fd1}}
    default_backend greenserve_v2

backend greenserve_v1
    option httpchk GET /check-v1
    server web1 127.0.0.1:{port} send-proxy check check-send-proxy inter 200ms

backend greenserve_v2
    option httpchk GET /check-v2
    server web1 127.0.0.1:{port} send-proxy-v2 check check-send-proxy inter 200ms
"""

#: A client address on the loopback network that is not HAProxy's (nor in any allow list).
CLIENT = "127.0.0.2"


@pytest.fixture
def balanced(master, proxies):
    """``(greenserve, haproxy, {1: port of the v1 frontend, 2: port of the v2 frontend})``."""
    server = master(
        "--proxy-protocol",
        "auto",
        "--proxy-allow-from",
        "127.0.0.1",
        "-w",
        "1",
        "--access-logfile",
        "-",
        "instance_app:app",
        cwd=APPS,
        env={"INSTANCE": "web1"},
    )
    haproxy, ports = proxies.haproxy(HAPROXY_CFG.format(port=server.port), frontends=2)
    for port in ports:
        haproxy.wait_serving("/environ", port=port)
    return server, haproxy, {1: ports[0], 2: ports[1]}


def connect_from(source: str, address: tuple[str, int]) -> socket.socket:
    """A TCP connection to ``address`` from the local address ``source``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(5)
        sock.bind((source, 0))
        sock.connect(address)
    except OSError as exc:
        sock.close()
        pytest.skip(f"cannot connect from {source} on this loopback: {exc}")
    return sock


@pytest.mark.parametrize("version", [1, 2])
def test_the_application_sees_the_client_address_haproxy_passes(balanced, version):
    server, _, ports = balanced
    with connect_from(CLIENT, ("127.0.0.1", ports[version])) as sock:
        client_port = sock.getsockname()[1]
        reader = ResponseReader(sock)
        seen = []
        for _ in range(2):  # the header applies to every request on the connection
            # A client's own X-Forwarded-For: 127.0.0.2 is no trusted proxy, so it changes nothing.
            sock.sendall(request_bytes("GET", "/environ", {"X-Forwarded-For": "203.0.113.9"}))
            response = reader.read()
            assert response.status == 200, response.body
            seen.append(json.loads(response.body))
    for environ in seen:
        assert environ["proxy_protocol"] == version
        assert environ["remote"] == [CLIENT, str(client_port)]
        assert environ["server"] == ["127.0.0.1", str(ports[version])]  # where the client connected
        assert environ["scheme"] == "http"
    assert "PROXY protocol: closing" not in server.log, server.log


def test_health_checks_send_the_header_and_pass(balanced):
    """``check check-send-proxy`` with ``option httpchk``: each check is an HTTP request behind a header."""
    server, haproxy, _ = balanced
    for version in (1, 2):
        server.wait_for(rf'^127\.0\.0\.1 .*"GET /check-v{version} HTTP/1\.[01]" 200 ', timeout=5)
    assert "is DOWN" not in haproxy.log, haproxy.log
    assert "PROXY protocol: closing" not in server.log, server.log


@pytest.mark.parametrize(
    "first_bytes",
    [
        pytest.param(request_bytes("GET", "/environ"), id="no-header"),
        pytest.param(b"PROXY TCP4 203.0.113.9\r\n" + request_bytes("GET", "/environ"), id="malformed-v1"),
        pytest.param(  # the v2 signature, then version 3
            b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + bytes(12) + request_bytes("GET", "/environ"),
            id="bad-version-v2",
        ),
    ],
)
def test_a_trusted_peer_without_a_valid_header_gets_no_answer(balanced, first_bytes):
    server, _, _ = balanced
    mark = len(server.lines)
    with socket.create_connection(server.address, timeout=5) as sock:  # from 127.0.0.1, like HAProxy
        sock.sendall(first_bytes)
        data, closed = read_until_close(sock, timeout=5)
    assert (data, closed) == (b"", True)
    server.wait_for(r"PROXY protocol: closing the connection from 127\.0\.0\.1: ", start=mark)


def test_other_peers_may_not_send_a_header(balanced):
    server, _, _ = balanced
    preamble = b"PROXY TCP4 203.0.113.9 127.0.0.1 4242 80\r\n"
    with connect_from(CLIENT, server.address) as sock:  # claiming another address
        sock.sendall(preamble + request_bytes("GET", "/environ"))
        assert read_until_close(sock, timeout=5) == (b"", True)
    with connect_from(CLIENT, server.address) as sock:  # plain HTTP is served, with its real address
        sock.sendall(request_bytes("GET", "/environ"))
        response = ResponseReader(sock).read()
    assert response.status == 200
    assert json.loads(response.body)["remote"][0] == CLIENT
