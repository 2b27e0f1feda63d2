"""What a TLS connection tells the application, and plain HTTP where TLS was expected; sans-IO.

The worker makes the TLS handshake (:mod:`greenserve.worker.tls`) and
reports what it learned in a :class:`TLSSession` of plain values. This module
turns that into:

- WSGI environ entries with Apache mod_ssl's names (``HTTPS``,
  ``SSL_PROTOCOL``, ``SSL_CIPHER``, ``SSL_CLIENT_VERIFY``, ``SSL_CLIENT_CERT``,
  ``SSL_CLIENT_S_DN``, ``SSL_CLIENT_I_DN``, ``SSL_CLIENT_M_SERIAL``,
  ``SSL_CLIENT_V_START``, ``SSL_CLIENT_V_END``): what mod_wsgi applications
  read, and what nginx's ``$ssl_*`` variables carry under other names;
- the ASGI ``tls`` extension (https://asgi.readthedocs.io/en/latest/specs/tls.html).

Both are computed once per connection, after its handshake.

:func:`sniff_plain_http` looks at a connection's first bytes on a TLS
listener: a plain HTTP request there gets a ``400`` saying so
(:data:`PLAIN_HTTP_DETAIL`) instead of a failed handshake the client
cannot explain.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PLAIN_HTTP_DETAIL",
    "TLS_VERSIONS",
    "TLSSession",
    "der_to_pem",
    "distinguished_name",
    "sniff_plain_http",
]

#: ``ssl.SSLSocket.version()`` -> the protocol version number the ASGI extension reports.
TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}

#: The body's second line in the 400 answer to plain HTTP on a TLS port (nginx's 497 says the same).
PLAIN_HTTP_DETAIL = "This port expects HTTPS: the plain HTTP request was sent to an HTTPS port."

#: Longest method accepted as "looks like HTTP" (PROPPATCH, MKCALENDAR, UPDATEREDIRECTREF: 17).
_METHOD_MAX = 20
_METHOD_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ-_")


def sniff_plain_http(data: bytes) -> bool | None:
    """Whether a TLS listener's first bytes are a plain HTTP request: an upper-case method and a space.

    ``None``: they could be, more bytes are needed. A TLS ClientHello starts
    with the byte 0x16 (an SSL 2 compatible one with a byte >= 0x80), so its
    first byte alone answers ``False``; an upper-case letter can never start
    one, so once the answer is ``None`` the bytes may be read, not just peeked.
    """
    for index, byte in enumerate(data[: _METHOD_MAX + 1]):
        if byte == 0x20:
            return index > 0
        if byte not in _METHOD_BYTES or (index == 0 and not 0x41 <= byte <= 0x5A):
            return False
    return None if len(data) <= _METHOD_MAX else False


def der_to_pem(der: bytes) -> str:
    """A DER certificate as PEM text (base64 in lines of 64, between the usual markers)."""
    text = base64.b64encode(der).decode("ascii")
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


#: Attribute names as ``ssl.getpeercert()`` gives them (OpenSSL's long names) -> the short
#: names RFC 4514 and OpenSSL's RFC 2253 output use. Others keep their name (or dotted OID).
_SHORT_NAMES = {
    "commonName": "CN",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
    "givenName": "GN",
    "surname": "SN",
}
_SPECIAL = frozenset(',+"\\<>;')


def _escape_value(value: str) -> str:
    """An attribute value escaped as RFC 4514 section 2.4 asks; control characters as ``\\XX`` too.

    Escaping control characters (allowed by the RFC) keeps a certificate from
    putting a line break into a log line or a header an application builds
    from the name.
    """
    out = []
    last = len(value) - 1
    for index, char in enumerate(value):
        if char in _SPECIAL or (index == 0 and char in "# ") or (index == last and char == " "):
            out.append("\\" + char)
        elif not char.isprintable():
            out.append("".join(f"\\{byte:02X}" for byte in char.encode("utf-8", "surrogatepass")))
        else:
            out.append(char)
    return "".join(out)


def distinguished_name(rdns: Sequence[Sequence[tuple[str, str]]]) -> str:
    """An X.509 name as an RFC 4514 string (``CN=alice,O=Example,C=FR``).

    ``rdns`` is the ``subject`` or ``issuer`` of ``ssl.getpeercert()``: the
    relative distinguished names in certificate order, each a sequence of
    ``(attribute, value)``. RFC 4514 writes them last first, as Apache's
    ``SSL_CLIENT_S_DN`` and nginx's ``$ssl_client_s_dn`` do; a multi-valued
    one is joined with ``+``.
    """
    return ",".join(
        "+".join(f"{_SHORT_NAMES.get(name, name)}={_escape_value(value)}" for name, value in rdn)
        for rdn in reversed(rdns)
    )


@dataclass(frozen=True, slots=True)
class TLSSession:
    """What one connection's TLS handshake settled (plain values, read once after it)."""

    #: ``TLSv1.3``, ``TLSv1.2`` (``ssl.SSLSocket.version()``).
    version: str
    #: OpenSSL's name of the cipher suite (``TLS_AES_256_GCM_SHA384``, ``ECDHE-RSA-AES128-GCM-SHA256``).
    cipher: str
    #: Its IANA number (``0x1302``), None when unknown.
    cipher_id: int | None
    #: The server certificate the client was shown, as PEM; None when greenserve cannot know it.
    server_cert: str | None
    #: The client's certificate and the chain it sent (DER, its own first); empty without one.
    client_chain: tuple[bytes, ...] = ()
    #: ``ssl.SSLSocket.getpeercert()`` for a verified client certificate, else None.
    client_cert: dict[str, Any] | None = None

    def environ(self) -> dict[str, str]:
        """The connection's WSGI environ entries, named as Apache mod_ssl names them.

        Without a client certificate only ``HTTPS``, ``SSL_PROTOCOL``,
        ``SSL_CIPHER`` and ``SSL_CLIENT_VERIFY`` (``NONE``) are set. A
        certificate that failed verification never gets this far: the
        handshake fails, so ``SSL_CLIENT_VERIFY`` is ``SUCCESS`` or ``NONE``.
        """
        environ = {
            "HTTPS": "on",
            "SSL_PROTOCOL": self.version,
            "SSL_CIPHER": self.cipher,
        }
        cert = self.client_cert
        if not cert or not self.client_chain:
            environ["SSL_CLIENT_VERIFY"] = "NONE"
            return environ
        environ.update(
            SSL_CLIENT_VERIFY="SUCCESS",
            SSL_CLIENT_CERT=der_to_pem(self.client_chain[0]),
            SSL_CLIENT_S_DN=distinguished_name(cert.get("subject", ())),
            SSL_CLIENT_I_DN=distinguished_name(cert.get("issuer", ())),
            SSL_CLIENT_M_SERIAL=str(cert.get("serialNumber", "")),
            SSL_CLIENT_V_START=str(cert.get("notBefore", "")),
            SSL_CLIENT_V_END=str(cert.get("notAfter", "")),
        )
        return environ

    def asgi_extension(self) -> dict[str, Any]:
        """The value of ``scope["extensions"]["tls"]`` (ASGI TLS extension 0.2)."""
        cert = self.client_cert
        verified = bool(cert) and bool(self.client_chain)
        return {
            "server_cert": self.server_cert,
            "client_cert_chain": tuple(der_to_pem(der) for der in self.client_chain) if verified else (),
            "client_cert_name": distinguished_name(cert.get("subject", ())) if cert and verified else None,
            "client_cert_error": None,  # an unverified certificate fails the handshake
            "tls_version": TLS_VERSIONS.get(self.version),
            "cipher_suite": self.cipher_id,
        }
