"""Tier (a): what a TLS connection tells the application, and plain HTTP on a TLS port, on plain values."""

from __future__ import annotations

import base64
import ssl

import pytest

from greenserve.protocol.tls import (
    PLAIN_HTTP_DETAIL,
    TLSSession,
    der_to_pem,
    distinguished_name,
    sniff_plain_http,
)

# A ClientHello's first bytes: a handshake record (0x16), TLS 1.0 record version, a length.
CLIENT_HELLO = bytes.fromhex("160301020001")


@pytest.mark.parametrize(
    "data",
    [b"GET / HTTP/1.1\r\n", b"POST ", b"OPTIONS * HTTP/1.1", b"M-SEARCH * HTTP/1.1", b"PROPPATCH /x"],
)
def test_a_method_and_a_space_is_plain_http(data):
    assert sniff_plain_http(data) is True


@pytest.mark.parametrize(
    "data",
    [
        CLIENT_HELLO,
        b"\x80\x2e\x01\x03\x01",  # an SSL 2 compatible ClientHello
        b"get / HTTP/1.1",  # methods are case-sensitive, and upper-case
        b" GET /",
        b"-GET /",
        b"GET\t/",
        b"GE\x00T /",
        b"A" * 21 + b" /",  # longer than any method
        b"\x16",  # one byte is enough to know
    ],
)
def test_anything_else_is_not(data):
    assert sniff_plain_http(data) is False


@pytest.mark.parametrize("data", [b"", b"G", b"GE", b"DELETE", b"A" * 20])
def test_the_start_of_a_method_needs_more_bytes(data):
    assert sniff_plain_http(data) is None


def test_a_request_split_at_every_byte_is_recognised_once_its_space_arrives():
    request = b"PATCH /x HTTP/1.1\r\n"
    space = request.index(b" ")
    for end in range(len(request) + 1):
        assert sniff_plain_http(request[:end]) is (None if end <= space else True), end


def test_the_detail_says_what_to_do():
    assert "expects HTTPS" in PLAIN_HTTP_DETAIL
    assert PLAIN_HTTP_DETAIL.isascii() and "\n" not in PLAIN_HTTP_DETAIL


def test_der_to_pem_is_what_the_ssl_module_makes():
    der = bytes(range(256)) * 3
    pem = der_to_pem(der)
    assert pem == ssl.DER_cert_to_PEM_cert(der)
    assert all(len(line) <= 64 for line in pem.splitlines())
    body = "".join(pem.splitlines()[1:-1])
    assert base64.b64decode(body) == der


# ssl.getpeercert() gives names in certificate order, with OpenSSL's long attribute names.
SUBJECT = (
    (("countryName", "FR"),),
    (("organizationName", "Example"),),
    (("organizationalUnitName", "Ops"),),
    (("commonName", "alice"),),
)
ISSUER = ((("countryName", "FR"),), (("organizationName", "Example"),), (("commonName", "Test CA"),))


def test_distinguished_name_is_rfc4514_most_specific_first():
    assert distinguished_name(SUBJECT) == "CN=alice,OU=Ops,O=Example,C=FR"


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("Smith, John", "Smith\\, John"),
        ('a+b"c\\d<e>f;g', 'a\\+b\\"c\\\\d\\<e\\>f\\;g'),
        ("#1", "\\#1"),
        (" lead", "\\ lead"),
        ("trail ", "trail\\ "),
        ("in side", "in side"),
        ("x=y", "x=y"),
        ("Zoë", "Zoë"),
        ("evil\r\nSet-Cookie: x", "evil\\0D\\0ASet-Cookie: x"),
        ("nul\x00", "nul\\00"),
    ],
)
def test_values_are_escaped(value, written):
    assert distinguished_name(((("commonName", value),),)) == f"CN={written}"


def test_multi_valued_rdns_and_unknown_attributes():
    rdns = (
        (("domainComponent", "org"),),
        (("domainComponent", "example"),),
        (("commonName", "bob"), ("userId", "42")),
        (("emailAddress", "bob@example.org"),),
        (("1.2.3.4.5", "x"),),
    )
    assert distinguished_name(rdns) == (
        "1.2.3.4.5=x,emailAddress=bob@example.org,CN=bob+UID=42,DC=example,DC=org"
    )


CLIENT_CERT = {
    "subject": SUBJECT,
    "issuer": ISSUER,
    "version": 3,
    "serialNumber": "0A1B2C3D",
    "notBefore": "Jan  5 09:34:43 2026 GMT",
    "notAfter": "Jan  5 09:34:43 2027 GMT",
}
LEAF = b"leaf-der"
CA = b"ca-der"


def session(**changes) -> TLSSession:
    values = {
        "version": "TLSv1.3",
        "cipher": "TLS_AES_256_GCM_SHA384",
        "cipher_id": 0x1302,
        "server_cert": "-----BEGIN CERTIFICATE-----\nc2VydmVy\n-----END CERTIFICATE-----\n",
        "client_chain": (LEAF, CA),
        "client_cert": CLIENT_CERT,
    }
    values.update(changes)
    return TLSSession(**values)


def test_environ_with_a_client_certificate_has_apache_mod_ssl_names():
    assert session().environ() == {
        "HTTPS": "on",
        "SSL_PROTOCOL": "TLSv1.3",
        "SSL_CIPHER": "TLS_AES_256_GCM_SHA384",
        "SSL_CLIENT_VERIFY": "SUCCESS",
        "SSL_CLIENT_CERT": der_to_pem(LEAF),
        "SSL_CLIENT_S_DN": "CN=alice,OU=Ops,O=Example,C=FR",
        "SSL_CLIENT_I_DN": "CN=Test CA,O=Example,C=FR",
        "SSL_CLIENT_M_SERIAL": "0A1B2C3D",
        "SSL_CLIENT_V_START": "Jan  5 09:34:43 2026 GMT",
        "SSL_CLIENT_V_END": "Jan  5 09:34:43 2027 GMT",
    }


def test_environ_without_a_client_certificate():
    environ = session(client_chain=(), client_cert=None).environ()
    assert environ == {
        "HTTPS": "on",
        "SSL_PROTOCOL": "TLSv1.3",
        "SSL_CIPHER": "TLS_AES_256_GCM_SHA384",
        "SSL_CLIENT_VERIFY": "NONE",
    }


def test_every_environ_value_is_a_native_string():
    for value in session().environ().values():
        assert type(value) is str


def test_asgi_extension_with_a_client_certificate():
    extension = session().asgi_extension()
    assert extension == {
        "server_cert": session().server_cert,
        "client_cert_chain": (der_to_pem(LEAF), der_to_pem(CA)),
        "client_cert_name": "CN=alice,OU=Ops,O=Example,C=FR",
        "client_cert_error": None,
        "tls_version": 0x0304,
        "cipher_suite": 0x1302,
    }


def test_asgi_extension_without_a_client_certificate():
    extension = session(
        version="TLSv1.2", cipher_id=None, server_cert=None, client_chain=(), client_cert=None
    ).asgi_extension()
    assert extension == {
        "server_cert": None,
        "client_cert_chain": (),
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": 0x0303,
        "cipher_suite": None,
    }
