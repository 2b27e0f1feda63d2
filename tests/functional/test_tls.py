"""HTTPS with ``--certfile``/``--keyfile`` (a self-signed certificate made for the test)."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import os
import socket
import ssl
import subprocess
import time

import pytest
import requests

from tests.conftest import read_until_close, run_cli

x509 = pytest.importorskip("cryptography.x509")


@pytest.fixture(scope="module")
def cert(tmp_path_factory) -> tuple[str, str]:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = tmp_path_factory.mktemp("tls")
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
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile = directory / "cert.pem"
    keyfile = directory / "key.pem"
    certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(certfile), str(keyfile)


@pytest.fixture(scope="module")
def server(module_greenserve, cert):
    certfile, keyfile = cert
    return module_greenserve("--certfile", certfile, "--keyfile", keyfile, "probe:app")


def test_listening_url_is_https(server):
    assert server.url.startswith("https://127.0.0.1:")


def test_https_request(server, cert):
    response = requests.get(server.url + "/list", verify=cert[0], timeout=5)
    assert response.status_code == 200
    assert response.content == b"abcdef"


def test_url_scheme_is_https(server, cert):
    environ = requests.get(server.url + "/environ", verify=cert[0], timeout=5).json()
    assert environ["wsgi.url_scheme"] == "https"


def test_keep_alive_over_tls(server, cert):
    context = ssl.create_default_context(cafile=cert[0])
    host, port = server.address
    conn = http.client.HTTPSConnection(host, port, context=context, timeout=5)
    try:
        for i in range(3):
            conn.request("POST", "/echo", body=b"x" * (i + 1) * 100000)
            response = conn.getresponse()
            assert response.read() == b"x" * (i + 1) * 100000
        conn.request("GET", "/stream")
        assert conn.getresponse().read() == b"chunk0\nchunk1\nchunk2\n"
    finally:
        conn.close()


def test_tls_keep_alive_after_a_long_idle(server, cert):
    """Idle past the server's greenlet parking delay (2 s): the TLS session goes on."""
    context = ssl.create_default_context(cafile=cert[0])
    host, port = server.address
    conn = http.client.HTTPSConnection(host, port, context=context, timeout=5)
    try:
        conn.request("GET", "/list")
        assert conn.getresponse().read() == b"abcdef"
        sock = conn.sock
        time.sleep(2.6)
        conn.request("POST", "/echo", body=b"still here")
        assert conn.getresponse().read() == b"still here"
        assert conn.sock is sock, "the connection was reopened"
    finally:
        conn.close()


def test_file_wrapper_over_tls(server, cert, tmp_path):
    data = os.urandom(2 * 1024 * 1024 + 3)
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    response = requests.get(server.url + f"/file?path={path}", verify=cert[0], timeout=10)
    assert response.status_code == 200
    assert response.headers.get("Content-Length") in (None, str(len(data)))
    assert response.content == data


def test_chunked_upload_over_tls(server, cert):
    def body():
        for _ in range(50):
            yield b"y" * 10000

    response = requests.post(server.url + "/digest", data=body(), verify=cert[0], timeout=10)
    assert response.json()["length"] == 500000


def test_curl(server, cert):
    result = subprocess.run(
        ["curl", "-sS", "--cacert", cert[0], server.url + "/list"],
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"abcdef"


def test_plain_http_to_tls_port_gets_a_400_saying_so(server, cert):
    """As nginx's 497: the client learns what is wrong instead of seeing a reset."""
    start = len(server.lines)
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(b"GET /list HTTP/1.1\r\nHost: x\r\n\r\n")
        data, closed = read_until_close(sock, 5)
    assert closed
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"\r\nConnection: close\r\n" in head
    assert b"Content-Type: text/plain; charset=utf-8" in head
    assert b"This port expects HTTPS" in body
    server.wait_for(r"\[INFO\] plain HTTP request from 127\.0\.0\.1 on an HTTPS port: answered 400", 5, start)
    assert requests.get(server.url + "/list", verify=cert[0], timeout=5).content == b"abcdef"


def test_plain_http_split_before_its_space_is_recognised(server):
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(b"DEL")
        time.sleep(0.05)  # not a wait for anything: two TCP segments, so the server sees "DEL" alone
        sock.sendall(b"ETE /x HTTP/1.1\r\nHost: x\r\n\r\n")
        data, _ = read_until_close(sock, 5)
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")


def test_curl_over_plain_http_to_tls_port_reads_the_answer(server):
    result = subprocess.run(
        ["curl", "-sS", "-i", server.url.replace("https://", "http://") + "/list"],
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"HTTP/1.1 400 Bad Request")
    assert b"This port expects HTTPS" in result.stdout


def test_garbage_to_tls_port_is_closed_without_an_answer(server, cert):
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(b"\x00\x01garbage\r\n")
        data, closed = read_until_close(sock, 5)
    assert closed and data == b""
    assert requests.get(server.url + "/list", verify=cert[0], timeout=5).content == b"abcdef"


def test_silent_tls_client_does_not_block_others(module_greenserve, cert):
    server = module_greenserve(
        "--certfile", cert[0], "--keyfile", cert[1], "--header-timeout", "1", "probe:app"
    )
    with socket.create_connection(server.address, timeout=5) as silent:
        assert requests.get(server.url + "/list", verify=cert[0], timeout=5).content == b"abcdef"
        _, closed = read_until_close(silent, 4)
    assert closed  # the handshake never started: dropped after the head timeout


def test_missing_certificate_file_is_a_clear_error(tmp_path):
    result = run_cli("-b", "127.0.0.1:0", "--certfile", str(tmp_path / "nope.pem"), "basic:app", timeout=20)
    output = result.stdout + result.stderr
    assert result.returncode in (2, 3), output
    assert "nope.pem" in output
    assert "Traceback" not in output


def test_proxy_protocol_before_tls_with_curl(module_greenserve, cert):
    """HAProxy's send-proxy in front of a TLS listener: the preamble, then the TLS handshake.

    curl's --haproxy-protocol sends a v1 line naming the client before the
    handshake; the preamble is read without touching the ClientHello.
    """
    server = module_greenserve(
        "--certfile", cert[0], "--keyfile", cert[1], "--proxy-protocol", "v1", "probe:app"
    )
    result = subprocess.run(
        ["curl", "-sS", "--haproxy-protocol", "--cacert", cert[0], server.url + "/environ"],
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    environ = __import__("json").loads(result.stdout)
    assert environ["REMOTE_ADDR"] == "127.0.0.1"  # curl names its own address (tier b checks others)
    assert environ["wsgi.url_scheme"] == "https"
    # A client that skips the preamble is closed before any TLS.
    with socket.create_connection(server.address, timeout=5) as plain:
        context = ssl.create_default_context(cafile=cert[0])
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            context.wrap_socket(plain, server_hostname="localhost").do_handshake()
