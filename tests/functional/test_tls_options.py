"""TLS settings, client certificates and certificate reloads, against the real ``greenserve``.

Every certificate is made here with ``cryptography``: a CA, a server
certificate and a client certificate it signed, and a client certificate from
another CA. Clients are the standard library's ``ssl`` and ``requests``.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import ssl
import threading
from pathlib import Path

import pytest
import requests

from tests.conftest import read_until_close, run_cli, wait_until

x509 = pytest.importorskip("cryptography.x509")
from tests.tls_pki import PASSWORD, PKI, issue, subject  # noqa: E402

ASGI_APPS = Path(__file__).resolve().parent.parent / "asgi" / "apps"
#: OpenSSL's names of the TLS 1.3 suites -> their IANA numbers (RFC 8446, B.4).
TLS13_SUITES = {
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> PKI:
    return PKI(tmp_path_factory.mktemp("pki"))


def tls_get(server, context: ssl.SSLContext, path: str = "/environ", timeout: float = 5.0):
    """One GET over a new TLS connection: ``(status, body, the TLS socket's facts)``."""
    raw = socket.create_connection(server.address, timeout=timeout)
    with raw, context.wrap_socket(raw, server_hostname="localhost") as sock:
        facts = {
            "version": sock.version(),
            "cipher": sock.cipher()[0],
            "server_cert": sock.getpeercert(binary_form=True),
        }
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        data, _ = read_until_close(sock, timeout)
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, body, facts


def environ_of(server, context: ssl.SSLContext) -> dict:
    status, body, _ = tls_get(server, context)
    assert status == 200, body
    return json.loads(body)


def refused(server, context: ssl.SSLContext) -> bool:
    """Whether the server refuses this client: in the handshake, or (TLS 1.3) on the first read."""
    try:
        status, _, _ = tls_get(server, context)
    except (ssl.SSLError, ConnectionError):
        return True
    return status == 0


def serial_of(der: bytes) -> int:
    return x509.load_der_x509_certificate(der).serial_number


# -- client certificates ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def optional_server(module_greenserve, pki):
    return module_greenserve(
        *pki.server_args("--ca-certs", pki.path("ca.pem"), "--cert-reqs", "optional"), "probe:app"
    )


def test_client_certificate_is_in_the_environ(optional_server, pki):
    environ = environ_of(optional_server, pki.client_context("client"))
    cert = pki.client.cert
    assert environ["SSL_CLIENT_VERIFY"] == "SUCCESS"
    assert environ["SSL_CLIENT_S_DN"] == "CN=alice,O=Example,C=FR"
    assert environ["SSL_CLIENT_I_DN"] == "CN=Test CA,O=Example,C=FR"
    assert int(environ["SSL_CLIENT_M_SERIAL"], 16) == cert.serial_number
    assert ssl.cert_time_to_seconds(environ["SSL_CLIENT_V_START"]) == int(
        cert.not_valid_before_utc.timestamp()
    )
    assert ssl.cert_time_to_seconds(environ["SSL_CLIENT_V_END"]) == int(cert.not_valid_after_utc.timestamp())
    assert x509.load_pem_x509_certificate(environ["SSL_CLIENT_CERT"].encode()) == cert
    assert environ["SSL_PROTOCOL"] == "TLSv1.3"
    assert environ["SSL_CIPHER"].startswith("TLS_")
    assert environ["HTTPS"] == "on"
    assert environ["wsgi.url_scheme"] == "https"


def test_every_request_on_a_connection_sees_the_certificate(optional_server, pki):
    options = {"verify": pki.path("ca.pem"), "cert": (pki.path("client.pem"), pki.path("client.key"))}
    with requests.Session() as session:  # (verify per request: REQUESTS_CA_BUNDLE beats session.verify)
        first = session.get(optional_server.url + "/environ", timeout=5, **options).json()
        second = session.get(optional_server.url + "/environ", timeout=5, **options).json()
    assert first["REMOTE_PORT"] == second["REMOTE_PORT"]  # one keep-alive connection
    keys = {key for key in first if key.startswith("SSL_")}
    assert {key: second[key] for key in keys} == {key: first[key] for key in keys}
    assert first["SSL_CLIENT_S_DN"] == "CN=alice,O=Example,C=FR"


def test_without_a_client_certificate(optional_server, pki):
    environ = environ_of(optional_server, pki.client_context())
    assert environ["SSL_CLIENT_VERIFY"] == "NONE"
    assert environ["SSL_PROTOCOL"] == "TLSv1.3"
    assert not [key for key in environ if key.startswith("SSL_CLIENT_") and key != "SSL_CLIENT_VERIFY"]


def test_optional_still_refuses_a_certificate_from_another_ca(optional_server, pki):
    start = len(optional_server.lines)
    assert refused(optional_server, pki.client_context("stranger"))
    optional_server.wait_for(r"TLS: refused the client certificate of 127\.0\.0\.1: ", start=start)


def test_required_refuses_clients_without_a_good_certificate(greenserve, pki):
    server = greenserve(
        *pki.server_args("--ca-certs", pki.path("ca.pem"), "--cert-reqs", "required"), "probe:app"
    )
    assert refused(server, pki.client_context())
    line = server.wait_for(r"TLS: 127\.0\.0\.1 sent no client certificate")
    assert "--cert-reqs required" in line

    start = len(server.lines)
    assert refused(server, pki.client_context("stranger"))
    line = server.wait_for(r"TLS: refused the client certificate", start=start)
    assert "unable to get local issuer certificate" in line

    environ = environ_of(server, pki.client_context("client"))  # and it keeps serving
    assert environ["SSL_CLIENT_S_DN"] == "CN=alice,O=Example,C=FR"
    refusals = [line for line in server.lines if "TLS: " in line]
    assert len(refusals) == 2, refusals  # one line each
    assert server.proc.poll() is None


# -- versions and ciphers --------------------------------------------------------------------------


def test_min_version_13_refuses_a_tls_12_client(greenserve, pki):
    server = greenserve(*pki.server_args("--tls-min-version", "1.3"), "probe:app")
    old = pki.client_context(maximum_version=ssl.TLSVersion.TLSv1_2)
    with pytest.raises(ssl.SSLError):
        tls_get(server, old)
    status, _, facts = tls_get(server, pki.client_context())
    assert status == 200
    assert facts["version"] == "TLSv1.3"


def test_tls_12_is_accepted_by_default(optional_server, pki):
    environ = environ_of(optional_server, pki.client_context(maximum_version=ssl.TLSVersion.TLSv1_2))
    assert environ["SSL_PROTOCOL"] == "TLSv1.2"


def test_ciphers_restrict_what_is_negotiated(greenserve, pki):
    chosen = "ECDHE-ECDSA-AES128-GCM-SHA256"
    server = greenserve(*pki.server_args("--ciphers", chosen), "probe:app")
    client = pki.client_context(maximum_version=ssl.TLSVersion.TLSv1_2)
    status, body, facts = tls_get(server, client)
    assert status == 200
    assert facts["cipher"] == chosen  # the client offers many; the server allows one
    assert json.loads(body)["SSL_CIPHER"] == chosen

    other = pki.client_context(maximum_version=ssl.TLSVersion.TLSv1_2)
    other.set_ciphers("ECDHE-ECDSA-CHACHA20-POLY1305")
    with pytest.raises(ssl.SSLError):
        tls_get(server, other)


def test_ciphers_matching_nothing_stop_the_server_with_one_line(pki):
    result = run_cli("-b", "127.0.0.1:0", *pki.server_args("--ciphers", "NO-SUCH-CIPHER"), "probe:app")
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    errors = [line for line in output.splitlines() if "ERROR" in line or "error:" in line]
    assert len(errors) == 1, output
    assert "--ciphers 'NO-SUCH-CIPHER': no cipher matches it" in errors[0]
    assert "Traceback" not in output


def test_ciphers_that_are_not_a_cipher_list_are_a_config_error(pki):
    result = run_cli("-b", "127.0.0.1:0", *pki.server_args("--ciphers", "HIGH;rm -rf"), "probe:app")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "ciphers" in result.stderr and "OpenSSL cipher list" in result.stderr


# -- encrypted keys ------------------------------------------------------------------------------


def _encrypted_key_args(pki) -> list[str]:
    return ["--certfile", pki.path("server.pem"), "--keyfile", pki.path("server-encrypted.key")]


def test_key_password_from_a_file(greenserve, pki, tmp_path):
    password_file = tmp_path / "key-password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    server = greenserve(*_encrypted_key_args(pki), "--keyfile-password-file", str(password_file), "probe:app")
    status, _, facts = tls_get(server, pki.client_context())
    assert status == 200
    assert serial_of(facts["server_cert"]) == pki.server.cert.serial_number
    assert PASSWORD not in server.log


def test_key_password_from_an_environment_variable(greenserve, pki, tmp_path):
    """The worker reads the variable, then removes it: the application does not inherit it."""
    seen = tmp_path / "seen"
    config = tmp_path / "env.conf.py"
    config.write_text(
        "import os\n\n"
        "def post_worker_init(worker):\n"
        f"    with open({str(seen)!r}, 'w') as handle:\n"
        "        handle.write(repr('TEST_KEY_PASSWORD' in os.environ))\n"
    )
    server = greenserve(
        "--config",
        str(config),
        *_encrypted_key_args(pki),
        "--keyfile-password-env",
        "TEST_KEY_PASSWORD",
        "probe:app",
        env={"TEST_KEY_PASSWORD": PASSWORD},
    )
    environ = environ_of(server, pki.client_context())
    assert environ["HTTPS"] == "on"
    assert seen.read_text() == "False"
    assert PASSWORD not in server.log


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ([], {}, "is encrypted: give its password with --keyfile-password-file or --keyfile-password-env"),
        (["--keyfile-password-env", "TEST_KEY_PASSWORD"], {}, "TEST_KEY_PASSWORD: the variable is not set"),
        (
            ["--keyfile-password-env", "TEST_KEY_PASSWORD"],
            {"TEST_KEY_PASSWORD": "not it"},
            "is the key's password right?",
        ),
    ],
    ids=["no-password", "unset-variable", "wrong-password"],
)
def test_key_password_problems_are_one_line(pki, args, env, message):
    result = run_cli("-b", "127.0.0.1:0", *_encrypted_key_args(pki), *args, "probe:app", env=env, timeout=20)
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    assert message in output
    assert "not it" not in output
    assert "Traceback" not in output


# -- the ssl_context hook --------------------------------------------------------------------------

HOOK = """
def ssl_context(config, default_ssl_context_factory):
    import ssl

    context = default_ssl_context_factory()
    if config.certfile.endswith("server.pem"):  # greenserve's settings, as gunicorn passes its own
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context
"""


def test_ssl_context_hook_changes_the_context(greenserve, pki, tmp_path):
    config = tmp_path / "tls.conf.py"
    config.write_text(HOOK)
    server = greenserve("--config", str(config), *pki.server_args(), "probe:app")
    status, body, facts = tls_get(server, pki.client_context())  # the client would prefer TLS 1.3
    assert status == 200
    assert facts["version"] == "TLSv1.2"
    assert json.loads(body)["SSL_PROTOCOL"] == "TLSv1.2"


def test_ssl_context_hook_that_returns_no_context_stops_the_server(pki, tmp_path):
    config = tmp_path / "tls.conf.py"
    config.write_text("def ssl_context(config, default_ssl_context_factory):\n    return None\n")
    result = run_cli("-b", "127.0.0.1:0", "--config", str(config), *pki.server_args(), "probe:app")
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    assert "the ssl_context hook returned NoneType, not an ssl.SSLContext" in output
    assert "Traceback" not in output


# -- renewed certificates --------------------------------------------------------------------------


def test_sighup_loads_a_renewed_certificate_without_a_pause(greenserve, tmp_path):
    pki = PKI(tmp_path / "pki")  # this test renews the server certificate: its own files
    server = greenserve(*pki.server_args(), "probe:app")
    context = pki.client_context()
    _, _, facts = tls_get(server, context)
    assert serial_of(facts["server_cert"]) == pki.server.cert.serial_number

    failures: list[BaseException] = []
    served = []
    stop = threading.Event()

    def clients() -> None:  # a new connection, so a new handshake, for every request
        while not stop.is_set():
            try:
                status, _, _ = tls_get(server, context, "/list")
                served.append(status)
            except (OSError, ssl.SSLError) as exc:
                failures.append(exc)

    thread = threading.Thread(target=clients, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: len(served) >= 5, 10)
        (old_worker,) = re.findall(r"Worker (\d+) serving", server.log)
        renewed = issue(subject("localhost"), pki.ca, server=True)
        pki.write_server(renewed)
        start = len(server.lines)
        server.send_signal(signal.SIGHUP)
        server.wait_for(r"Worker \d+ serving", start=start, timeout=15)
        server.wait_for(rf"Worker {old_worker} stopped", start=start, timeout=15)
        before = len(served)
        assert wait_until(lambda: len(served) >= before + 5, 10)
    finally:
        stop.set()
        thread.join(10)
    assert not failures, failures[:3]
    assert set(served) == {200}
    _, _, facts = tls_get(server, context)
    assert serial_of(facts["server_cert"]) == renewed.cert.serial_number


def test_a_broken_renewal_keeps_the_current_certificate(greenserve, tmp_path):
    pki = PKI(tmp_path / "pki")
    server = greenserve(*pki.server_args(), "probe:app")
    pki.write("server.key", pki.client.key_pem())  # a key that does not match the certificate
    start = len(server.lines)
    server.send_signal(signal.SIGHUP)
    line = server.wait_for(r"could not start .* after a reload; keeping", start=start, timeout=15)
    assert "key values mismatch" in line
    _, _, facts = tls_get(server, pki.client_context())
    assert serial_of(facts["server_cert"]) == pki.server.cert.serial_number


# -- ASGI ----------------------------------------------------------------------------------------


def test_asgi_scope_has_the_tls_extension(greenserve, pki):
    server = greenserve(
        "--chdir",
        str(ASGI_APPS),
        *pki.server_args("--ca-certs", pki.path("ca.pem"), "--cert-reqs", "optional"),
        "raw_app:app",
        cwd=ASGI_APPS,
    )
    status, body, facts = tls_get(server, pki.client_context("client"), "/scope")
    assert status == 200, body
    scope = json.loads(body)
    tls = scope["extensions"]["tls"]
    assert x509.load_pem_x509_certificate(tls["server_cert"].encode()) == pki.server.cert
    chain = [x509.load_pem_x509_certificate(pem.encode()) for pem in tls["client_cert_chain"]]
    assert chain[0] == pki.client.cert
    assert tls["client_cert_name"] == "CN=alice,O=Example,C=FR"
    assert tls["client_cert_error"] is None
    assert tls["tls_version"] == 0x0304
    assert tls["cipher_suite"] == TLS13_SUITES[facts["cipher"]]
    assert scope["scheme"] == "https"

    status, body, _ = tls_get(server, pki.client_context(maximum_version=ssl.TLSVersion.TLSv1_2), "/scope")
    tls = json.loads(body)["extensions"]["tls"]
    assert tls["client_cert_chain"] == []
    assert tls["client_cert_name"] is None
    assert tls["tls_version"] == 0x0303


def test_asgi_plain_http_has_no_tls_extension(greenserve):
    server = greenserve("--chdir", str(ASGI_APPS), "raw_app:app", cwd=ASGI_APPS)
    response = requests.get(server.url + "/scope", timeout=5)
    assert "tls" not in response.json().get("extensions", {})
