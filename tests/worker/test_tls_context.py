"""The worker's TLS context, built in this process: settings, key passwords, the ssl_context hook.

What a client sees of these is tested against the real server in
tests/functional/test_tls_options.py; here, what is hard to see from outside:
which errors come out, in one line, and what the worker keeps for its
connections (the server certificate, cipher numbers).
"""

from __future__ import annotations

import os
import ssl

import pytest

from greenserve.config import from_mapping
from greenserve.errors import BootError
from greenserve.worker.tls import PASSWORD_MAX, key_password, load_server_tls

x509 = pytest.importorskip("cryptography.x509")
from tests.tls_pki import PASSWORD, PKI  # noqa: E402


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> PKI:
    return PKI(tmp_path_factory.mktemp("pki"))


def config_for(pki: PKI, **settings):
    values = {"certfile": pki.path("server.pem"), "keyfile": pki.path("server.key"), **settings}
    return from_mapping(values, "test")


def encrypted(pki: PKI, **settings):
    return config_for(pki, keyfile=pki.path("server-encrypted.key"), **settings)


def test_the_default_context(pki):
    tls = load_server_tls(config_for(pki))
    assert tls.context.verify_mode == ssl.CERT_NONE
    assert tls.context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert x509.load_pem_x509_certificate(tls.server_cert.encode()) == pki.server.cert
    assert tls.cipher_ids["TLS_AES_256_GCM_SHA384"] == 0x1302
    assert tls.cipher_ids["ECDHE-ECDSA-AES128-GCM-SHA256"] == 0xC02B


def test_settings_shape_the_context(pki):
    tls = load_server_tls(
        config_for(
            pki,
            ca_certs=pki.path("ca.pem"),
            cert_reqs="optional",
            tls_min_version="1.3",
            ciphers="ECDHE-ECDSA-AES256-GCM-SHA384",
        )
    )
    assert tls.context.verify_mode == ssl.CERT_OPTIONAL
    assert tls.context.minimum_version == ssl.TLSVersion.TLSv1_3
    tls12 = [name for name in tls.cipher_ids if not name.startswith("TLS_")]
    assert tls12 == ["ECDHE-ECDSA-AES256-GCM-SHA384"]


def test_password_file_holds_one_line(pki, tmp_path):
    path = tmp_path / "pw"
    path.write_bytes(PASSWORD.encode() + b"\r\n")
    config = encrypted(pki, keyfile_password_file=str(path))
    assert key_password(config) == PASSWORD.encode()
    assert load_server_tls(config).server_cert is not None


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"\n", "is empty"), (b"x" * (PASSWORD_MAX + 1), f"longer than {PASSWORD_MAX} bytes")],
)
def test_password_file_that_is_not_one(pki, tmp_path, content, message):
    path = tmp_path / "pw"
    path.write_bytes(content)
    with pytest.raises(BootError, match=message):
        key_password(encrypted(pki, keyfile_password_file=str(path)))


def test_password_file_that_cannot_be_read(pki, tmp_path):
    missing = tmp_path / "missing"
    with pytest.raises(BootError) as info:
        key_password(encrypted(pki, keyfile_password_file=str(missing)))
    assert str(info.value) == f"TLS: --keyfile-password-file {missing}: No such file or directory"


def test_password_variable_is_taken_out_of_the_environment(pki, monkeypatch):
    monkeypatch.setenv("TEST_KEY_PASSWORD", PASSWORD)
    tls = load_server_tls(encrypted(pki, keyfile_password_env="TEST_KEY_PASSWORD"))
    assert tls.server_cert is not None
    assert "TEST_KEY_PASSWORD" not in os.environ


def test_an_encrypted_key_without_a_password_is_an_error_not_a_prompt(pki):
    with pytest.raises(BootError, match="is encrypted: give its password"):
        load_server_tls(encrypted(pki))


def test_a_wrong_password_is_named_without_the_password(pki, monkeypatch):
    monkeypatch.setenv("TEST_KEY_PASSWORD", "hunter2")
    with pytest.raises(BootError) as info:
        load_server_tls(encrypted(pki, keyfile_password_env="TEST_KEY_PASSWORD"))
    assert "is the key's password right?" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_the_hook_gets_the_config_and_the_factory(pki):
    calls = []

    def ssl_context(config, default_ssl_context_factory):
        context = default_ssl_context_factory()
        calls.append((config.certfile, context))
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        return context

    tls = load_server_tls(config_for(pki, ssl_context=ssl_context))
    assert calls == [(pki.path("server.pem"), tls.context)]
    assert tls.context.maximum_version == ssl.TLSVersion.TLSv1_2
    assert tls.server_cert is not None  # the settings' context: its certificate is known


def test_a_context_of_the_hooks_own_has_no_known_server_certificate(pki):
    def ssl_context(config, default_ssl_context_factory):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki.path("server.pem"), pki.path("server.key"))
        return context

    tls = load_server_tls(config_for(pki, ssl_context=ssl_context))
    assert tls.server_cert is None


@pytest.mark.parametrize(
    ("hook", "message"),
    [
        (lambda config, factory: 42, "returned int, not an ssl.SSLContext"),
        (lambda config, factory: 1 / 0, "the ssl_context hook failed: ZeroDivisionError: division by zero"),
    ],
)
def test_hook_errors_are_one_line(pki, hook, message):
    with pytest.raises(BootError) as info:
        load_server_tls(config_for(pki, ssl_context=hook))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_the_factory_errors_come_out_of_the_hook_as_they_are(pki):
    config = config_for(pki, ciphers="NO-SUCH-CIPHER", ssl_context=lambda config, factory: factory())
    with pytest.raises(BootError, match="--ciphers 'NO-SUCH-CIPHER': no cipher matches it"):
        load_server_tls(config)


def test_ca_certs_that_cannot_be_loaded(pki, tmp_path):
    config = config_for(pki, ca_certs=str(tmp_path / "none.pem"), cert_reqs="required")
    with pytest.raises(BootError, match=r"cannot load --ca-certs .*none\.pem: No such file"):
        load_server_tls(config)
