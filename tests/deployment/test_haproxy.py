"""HAProxy in TCP mode in front of greenserve, passing the client's address with the PROXY protocol.

One HAProxy, three frontends: one sends the version 1 header
(``send-proxy``), one version 2 (``send-proxy-v2``), and one ends TLS and
sends version 2 with the TLS details (``send-proxy-v2-ssl``), all to one
greenserve started with ``--proxy-protocol auto --proxy-allow-from
127.0.0.1``. The health checks are HTTP requests behind the header too
(``check-send-proxy``). The client connects from 127.0.0.2, so the address
HAProxy reports differs from HAProxy's own 127.0.0.1.
"""

from __future__ import annotations

import datetime
import json
import socket
import ssl
from pathlib import Path

import pytest

from tests.conftest import ResponseReader, read_until_close, request_bytes

from .conftest import APPS, requires

pytestmark = [pytest.mark.timeout(60), requires("haproxy")]

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

frontend via_tls
    bind fd@{{fd2}} ssl crt {pem}
    default_backend greenserve_v2_ssl

backend greenserve_v1
    option httpchk
    http-check send meth GET uri /check-v1 ver HTTP/1.1 hdr Host localhost
    server web1 127.0.0.1:{port} send-proxy check check-send-proxy inter 200ms

backend greenserve_v2
    option httpchk
    http-check send meth GET uri /check-v2 ver HTTP/1.1 hdr Host localhost
    server web1 127.0.0.1:{port} send-proxy-v2 check check-send-proxy inter 200ms

backend greenserve_v2_ssl
    option httpchk
    http-check send meth GET uri /check-v2-ssl ver HTTP/1.1 hdr Host localhost
    server web1 127.0.0.1:{port} send-proxy-v2-ssl check check-send-proxy inter 200ms
"""

#: A client address on the loopback network that is not HAProxy's (nor in any allow list).
CLIENT = "127.0.0.2"


def self_signed_pem(directory: Path) -> Path:
    """A certificate for localhost and its key, in one PEM file (as HAProxy's ``crt`` wants)."""
    pytest.importorskip("cryptography", reason="the cryptography package makes the test certificate")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    path = directory / "localhost.pem"
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM) + key_pem)
    return path


@pytest.fixture
def balanced(master, proxies, tmp_path):
    """``(greenserve, haproxy, ports)``: the frontends' ports by name, ``v1``, ``v2`` and ``tls``."""
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
    config = HAPROXY_CFG.format(port=server.port, pem=self_signed_pem(tmp_path))
    haproxy, ports = proxies.haproxy(config, frontends=3)
    for port in ports[:2]:
        haproxy.wait_serving("/environ", port=port)
    return server, haproxy, dict(zip(("v1", "v2", "tls"), ports, strict=True))


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


def ask_environ(sock: socket.socket, times: int = 2) -> list[dict]:
    """``GET /environ`` ``times`` on one connection (with a client's own X-Forwarded-For)."""
    reader = ResponseReader(sock)
    seen = []
    for _ in range(times):
        # 127.0.0.2 is no trusted proxy: its X-Forwarded-For changes nothing.
        sock.sendall(request_bytes("GET", "/environ", {"X-Forwarded-For": "203.0.113.9"}))
        response = reader.read()
        assert response.status == 200, response.body
        seen.append(json.loads(response.body))
    return seen


@pytest.mark.parametrize("version", [1, 2])
def test_the_application_sees_the_client_address_haproxy_passes(balanced, version):
    server, _, ports = balanced
    port = ports[f"v{version}"]
    with connect_from(CLIENT, ("127.0.0.1", port)) as sock:
        client_port = sock.getsockname()[1]
        seen = ask_environ(sock)  # the header applies to every request on the connection
    for environ in seen:
        assert environ["proxy_protocol"] == version
        assert environ["remote"] == [CLIENT, str(client_port)]
        assert environ["server"] == ["127.0.0.1", str(port)]  # where the client connected
        assert environ["scheme"] == "http"
    assert "PROXY protocol: closing" not in server.log, server.log


def test_tls_ended_by_haproxy_is_https_for_the_application(balanced):
    """``bind ... ssl crt`` in HAProxy, ``send-proxy-v2-ssl``: the header says the client used TLS."""
    _, _, ports = balanced
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test's own self-signed certificate
    with connect_from(CLIENT, ("127.0.0.1", ports["tls"])) as raw:
        client_port = raw.getsockname()[1]
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            (environ,) = ask_environ(sock, times=1)
    assert environ["scheme"] == "https"
    assert environ["proxy_protocol"] == 2
    assert environ["remote"] == [CLIENT, str(client_port)]


def test_health_checks_send_the_header_and_pass(balanced):
    """``check check-send-proxy`` with ``option httpchk``: each check is an HTTP request behind a header."""
    server, haproxy, _ = balanced
    for path in ("/check-v1", "/check-v2", "/check-v2-ssl"):
        server.wait_for(rf'^127\.0\.0\.1 .*"GET {path} HTTP/1\.1" 200 ', timeout=5)
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
