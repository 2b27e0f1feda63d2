"""Certificates for TLS tests, made with ``cryptography``: CAs, servers, clients.

Every certificate carries what strict verification wants (key usage, key
identifiers): Python 3.13 and urllib3 2 verify with ``VERIFY_X509_STRICT``.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: The password of ``server-encrypted.key``.
PASSWORD = "correct horse battery staple"


def subject(common_name: str, organization: str = "Example") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, password: str | None = None) -> bytes:
        encryption = (
            serialization.BestAvailableEncryption(password.encode())
            if password
            else serialization.NoEncryption()
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )


def issue(holder: x509.Name, issuer: Issued | None, *, ca: bool = False, server: bool = False) -> Issued:
    """A certificate for ``holder`` signed by ``issuer`` (None: self-signed), valid from yesterday."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(holder)
        .issuer_name(issuer.cert.subject if issuer else holder)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        # What strict verification (Python 3.13's default, urllib3 2) wants of every certificate.
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return Issued(builder.sign(issuer.key if issuer else key, hashes.SHA256()), key)


class PKI:
    """Certificate files in a directory: ``pki.path("server.pem")``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(exist_ok=True)
        self.ca = issue(subject("Test CA"), None, ca=True)
        self.other_ca = issue(subject("Other CA", "Elsewhere"), None, ca=True)
        self.server = issue(subject("localhost"), self.ca, server=True)
        self.client = issue(subject("alice"), self.ca)
        self.stranger = issue(subject("mallory", "Elsewhere"), self.other_ca)
        self.write("ca.pem", self.ca.pem())
        self.write_server(self.server)
        self.write("server-encrypted.key", self.server.key_pem(PASSWORD))
        self.write("client.pem", self.client.pem())
        self.write("client.key", self.client.key_pem())
        self.write("stranger.pem", self.stranger.pem())
        self.write("stranger.key", self.stranger.key_pem())

    def path(self, name: str) -> str:
        return str(self.directory / name)

    def write(self, name: str, data: bytes) -> None:
        """Atomically, as certbot replaces a renewed certificate: a reader never sees half a file."""
        tmp = self.directory / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.directory / name)

    def write_server(self, issued: Issued) -> None:
        self.write("server.key", issued.key_pem())
        self.write("server.pem", issued.pem())

    def server_args(self, *extra: str) -> list[str]:
        return ["--certfile", self.path("server.pem"), "--keyfile", self.path("server.key"), *extra]

    def client_context(self, cert: str | None = None, **options) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.path("ca.pem"))
        if cert:
            context.load_cert_chain(self.path(f"{cert}.pem"), self.path(f"{cert}.key"))
        for option, value in options.items():
            setattr(context, option, value)
        return context
