"""The worker's TLS: its server context, and connections that make a handshake first.

:func:`load_server_tls` builds the context once per worker, before the worker
drops its privileges (a private key is often readable by root only): the
certificate and key (with ``--keyfile-password-file`` or
``--keyfile-password-env`` for an encrypted key), ``--ca-certs`` and
``--cert-reqs``, ``--tls-min-version``, ``--ciphers``, then the
configuration file's ``ssl_context(config, default_ssl_context_factory)``
hook, gunicorn's, which may change that context or make another. Every
problem is a :class:`~greenserve.errors.BootError` of one line: the master
stops at start-up, or keeps its current workers after a ``SIGHUP`` (which is
how a renewed certificate is loaded).

:class:`TLSConnection` wraps its socket in its own greenlet, after the
prefaces (the PROXY protocol) and within ``--header-timeout``. A plain HTTP
request where the handshake should start is answered with a ``400``; after a
handshake, what it settled (protocol, cipher, the client's certificate) is
put into the connection's own copy of the listener's environ entries and
into the ASGI ``tls`` extension, once for all its requests.

Imported by the worker after gevent patched ``ssl``.
"""

from __future__ import annotations

import _ssl
import logging
import os
import re
import socket
import ssl
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Any

from greenserve.config import Config
from greenserve.errors import BootError, ClientDisconnected
from greenserve.protocol.response import error_response
from greenserve.protocol.tls import PLAIN_HTTP_DETAIL, TLSSession, der_to_pem, sniff_plain_http
from greenserve.worker.connection import BUSY, WAIT_HEAD, Connection

if TYPE_CHECKING:
    from greenserve.worker.server import WorkerServer

log = logging.getLogger("greenserve.error")

#: A password file holds one line: more than this is not one (and is not read whole).
PASSWORD_MAX = 1024
#: Bytes peeked before the handshake: enough for any method and its space.
_SNIFF_BYTES = 24
#: Handshake failures that are about the client's certificate: logged at info, not debug.
_CLIENT_CERT_REASONS = frozenset({"PEER_DID_NOT_RETURN_A_CERTIFICATE", "CERTIFICATE_VERIFY_FAILED"})
_PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)
_SOURCE_LINE = re.compile(r"\(_ssl\.c:\d+\)")
_MIN_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class ServerTLS:
    """A worker's TLS context, with what each of its connections reports about the server side."""

    __slots__ = ("cipher_ids", "context", "server_cert")

    def __init__(self, context: ssl.SSLContext, server_cert: str | None) -> None:
        self.context = context
        #: The certificate clients are shown (PEM), for the ASGI extension; None when unknown.
        self.server_cert = server_cert
        #: OpenSSL's cipher names -> IANA numbers (``get_ciphers()`` ids are 0x0300XXXX).
        self.cipher_ids = {cipher["name"]: cipher["id"] & 0xFFFF for cipher in context.get_ciphers()}

    def wrap_socket(self, sock: Any) -> Any:
        """``sock`` as the server side of a TLS connection; the handshake is made later."""
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)

    def session(self, sock: Any) -> TLSSession:
        """What the handshake of ``sock`` settled."""
        cipher = sock.cipher()
        name = cipher[0] if cipher else ""
        cert = sock.getpeercert() or None  # a dict only for a certificate that was verified
        chain: tuple[bytes, ...] = ()
        if cert:
            leaf = sock.getpeercert(True)
            chain = _client_chain(sock, leaf) if leaf else ()
        return TLSSession(
            version=sock.version() or "",
            cipher=name,
            cipher_id=self.cipher_ids.get(name),
            server_cert=self.server_cert,
            client_chain=chain,
            client_cert=cert,
        )


def _client_chain(sock: Any, leaf: bytes) -> tuple[bytes, ...]:
    """The client's certificate and the chain it sent after it (DER).

    Python 3.13 made ``get_unverified_chain()`` public; the ``_ssl`` object of
    3.11 and 3.12 has it already. Without it, the client's own certificate.
    """
    chain = [leaf]
    get_chain = getattr(getattr(sock, "_sslobj", None), "get_unverified_chain", None)
    if get_chain is not None:
        try:
            sent = [
                cert if isinstance(cert, bytes) else cert.public_bytes(_ssl.ENCODING_DER)
                for cert in get_chain() or ()
                if cert is not None
            ]
        except (AttributeError, TypeError, ValueError, ssl.SSLError):
            sent = []
        chain += [der for der in sent if der != leaf]
    return tuple(chain)


# -- the context ---------------------------------------------------------------------------


def key_password(config: Config) -> bytes | None:
    """The private key's password from ``--keyfile-password-file`` or ``--keyfile-password-env``.

    The file holds the password on its first line (a final line break is not
    part of it). The variable is removed from the worker's environment once
    read, so the application and what it starts do not inherit it. Neither
    the password nor its length is ever logged.
    """
    if config.keyfile_password_file:
        path = config.keyfile_password_file
        try:
            with open(path, "rb") as handle:
                data = handle.read(PASSWORD_MAX + 1)
        except OSError as exc:
            raise BootError(f"TLS: --keyfile-password-file {path}: {exc.strerror or exc}") from None
        if len(data) > PASSWORD_MAX:
            raise BootError(
                f"TLS: --keyfile-password-file {path}: longer than {PASSWORD_MAX} bytes, not a password file"
            )
        password = data.rstrip(b"\r\n")
        if not password:
            raise BootError(f"TLS: --keyfile-password-file {path} is empty")
        return password
    if config.keyfile_password_env:
        name = config.keyfile_password_env
        value = os.environ.pop(name, None)
        if not value:
            raise BootError(f"TLS: --keyfile-password-env {name}: the variable is not set, or empty")
        return os.fsencode(value)
    return None


class _EncryptedKeyError(Exception):
    """OpenSSL asked for a password that was not configured."""


def _no_password() -> bytes:
    # Without a callback, OpenSSL would prompt on the terminal and the worker would hang there.
    raise _EncryptedKeyError


def default_ssl_context(config: Config, password: bytes | None) -> ssl.SSLContext:
    """The context the settings describe (what the ``ssl_context`` hook's factory returns)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)  # TLS 1.2 or newer
    context.minimum_version = _MIN_VERSIONS[config.tls_min_version]
    keyfile = config.keyfile or None
    files = f"--certfile {config.certfile}" + (f" / --keyfile {keyfile}" if keyfile else "")
    try:
        context.load_cert_chain(config.certfile, keyfile, password=password or _no_password)
    except _EncryptedKeyError:
        raise BootError(
            f"TLS: the private key in {keyfile or config.certfile} is encrypted: give its password with "
            "--keyfile-password-file or --keyfile-password-env"
        ) from None
    except OSError as exc:  # ssl.SSLError too
        if password is not None and isinstance(exc, ssl.SSLError) and exc.reason in (None, "BAD_DECRYPT"):
            reason = "cannot decrypt the private key: is the key's password right?"
        else:
            reason = _reason(exc)
        raise BootError(f"TLS: cannot load {files}: {reason}") from None
    if config.ca_certs:
        try:
            context.load_verify_locations(config.ca_certs)
        except OSError as exc:
            raise BootError(f"TLS: cannot load --ca-certs {config.ca_certs}: {_reason(exc)}") from None
    context.verify_mode = {
        "none": ssl.CERT_NONE,
        "optional": ssl.CERT_OPTIONAL,
        "required": ssl.CERT_REQUIRED,
    }[config.cert_reqs]
    if config.ciphers:
        try:
            context.set_ciphers(config.ciphers)
        except ssl.SSLError:
            raise BootError(
                f"TLS: --ciphers {config.ciphers!r}: no cipher matches it in {ssl.OPENSSL_VERSION} "
                "(an OpenSSL cipher list such as ECDHE+AESGCM:ECDHE+CHACHA20)"
            ) from None
    context.set_alpn_protocols(["http/1.1"])
    return context


def load_server_tls(config: Config) -> ServerTLS:
    """The worker's TLS, with the ``ssl_context`` hook applied; raises BootError."""
    password = key_password(config)
    made: list[ssl.SSLContext] = []

    def default_ssl_context_factory() -> ssl.SSLContext:
        context = default_ssl_context(config, password)
        made.append(context)
        return context

    hook: Callable[..., Any] | None = config.ssl_context
    if hook is None:
        context: Any = default_ssl_context_factory()
    else:
        try:
            context = hook(config, default_ssl_context_factory)
        except BootError:
            raise  # the factory's own, already one clear line
        except Exception as exc:  # noqa: BLE001 - the hook's errors are reported in one line
            raise BootError(f"TLS: the ssl_context hook failed: {type(exc).__name__}: {exc}") from None
        if not isinstance(context, ssl.SSLContext):  # gevent's class, once ssl is patched
            if isinstance(context, _ssl._SSLContext):
                raise BootError(
                    "TLS: the ssl_context hook returned a context of the ssl module as it was before "
                    "gevent patched it: import ssl inside the hook, or use default_ssl_context_factory()"
                )
            raise BootError(
                f"TLS: the ssl_context hook returned {type(context).__name__}, not an ssl.SSLContext "
                "(return default_ssl_context_factory(), changed as needed)"
            )
    # The certificate shown to clients is known when the settings' context is the one served.
    server_cert = _first_certificate(config.certfile) if any(c is context for c in made) else None
    return ServerTLS(context, server_cert)


def _first_certificate(path: str) -> str | None:
    """The first certificate of a PEM file, normalised (the server's own, before its chain)."""
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            match = _PEM_CERTIFICATE.search(handle.read())
        return der_to_pem(ssl.PEM_cert_to_DER_cert(match.group(0))) if match else None
    except (OSError, ValueError):
        return None


def _reason(exc: OSError) -> str:
    """An error from ``ssl`` or the file system in a few words (no file name twice, no C source line)."""
    if isinstance(exc, ssl.SSLError):
        if exc.reason:
            return str(exc.reason).replace("_", " ").lower()
        text = _SOURCE_LINE.sub("", str(exc.args[-1])).strip()
        return f"{text} (not a PEM certificate or private key?)" if "PEM lib" in text else text
    return exc.strerror or str(exc)


# -- connections ---------------------------------------------------------------------------


class TLSConnection(Connection):
    """A connection whose TLS handshake runs in its own greenlet, under the head timeout.

    It is accepted as a plain socket: a preface (the PROXY protocol) reads its
    bytes before the TLS layer does; its first bytes are then peeked at (plain
    HTTP gets a 400), the socket is wrapped and the handshake made.
    """

    __slots__ = ("handshaken", "tls_extension")
    TLS = True

    def _serve(self) -> bool:
        if not getattr(self, "handshaken", False):
            if not self._handshake():
                return False
            self.handshaken = True
        return super()._serve()

    def _handshake(self) -> bool:
        server: WorkerServer = self.server
        if not self.prefaced and server.prefaces and self._preface(b"") is None:
            return False
        plain = self.sock
        deadline = monotonic() + server.header_timeout
        # Like the rest of a head: evictable when slow, bounded by the head timeout.
        self.waiting_since = monotonic()
        self.waiting = WAIT_HEAD
        try:
            first = self.wait_on_client(server.header_timeout, plain.recv, _SNIFF_BYTES, socket.MSG_PEEK)
            if not first:
                return False
            plain_http = sniff_plain_http(first)
            if plain_http is None:  # not TLS (see sniff_plain_http): read until it is clear what it is
                plain_http = self._read_method(deadline)
            if plain_http is not False:
                self.waiting = BUSY
                if plain_http:
                    self._answer_plain_http()
                return False
            tls = self.sock = server.ssl_context.wrap_socket(plain)
            self.raw_send = tls.send
            self.wait_on_client(deadline - monotonic(), tls.do_handshake)
        except OSError as exc:
            _handshake_failed(self.remote[0], exc)
            return False
        finally:
            self.waiting = BUSY
        session = server.ssl_context.session(tls)
        base = dict(self.base)  # this connection's own copy: the listener's is shared
        base.update(session.environ())
        self.base = base
        self.tls_extension = session.asgi_extension() if server.asgi is not None else None
        return True

    def _read_method(self, deadline: float) -> bool | None:
        """Read the first bytes until they are, or are not, a method and a space (None: closed)."""
        data = b""
        while True:
            more = self.wait_on_client(deadline - monotonic(), self.sock.recv, _SNIFF_BYTES)
            if not more:
                return None
            data += more
            verdict = sniff_plain_http(data)
            if verdict is not None:
                return verdict

    def _answer_plain_http(self) -> None:
        """``400`` saying this port speaks HTTPS, as nginx's 497 page does; then close."""
        server = self.server
        log.info("plain HTTP request from %s on an HTTPS port: answered 400", self.remote[0])
        self.linger = True  # the unread request must not turn the close into a reset
        try:
            self.sendall(error_response(400, server.clock.date_line(), server.server_line, PLAIN_HTTP_DETAIL))
        except ClientDisconnected:
            pass


def _handshake_failed(peer: str, exc: OSError) -> None:
    """One line per failed handshake: at info for a refused client certificate, else at debug.

    Scanners and clients that give up fail handshakes all day long; a client
    certificate refused under ``--cert-reqs`` is what an operator looks for.
    """
    reason = getattr(exc, "reason", None)
    if reason in _CLIENT_CERT_REASONS:
        if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
            log.info("TLS: %s sent no client certificate (--cert-reqs required): handshake refused", peer)
        else:
            detail = getattr(exc, "verify_message", None) or "certificate verify failed"
            log.info("TLS: refused the client certificate of %s: %s", peer, detail)
        return
    log.debug("TLS handshake with %s failed: %s", peer, exc)
