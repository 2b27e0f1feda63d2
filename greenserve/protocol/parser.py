"""The parser interface shared by the h11 and httptools backends.

A backend is sans-IO: :meth:`Parser.feed` takes bytes from the client and
appends *events* to :attr:`Parser.events`, in order:

- a :class:`Request` when a request head is complete and valid;
- ``bytes`` for each piece of its body;
- :data:`END` when the body is complete (for a request without a body, in
  the same :meth:`Parser.feed` call as its :class:`Request`);
- a :class:`~greenserve.errors.ProtocolError` when the client broke the
  protocol. Errors are queued, not raised, so a bad request pipelined behind
  good ones is answered after them, in order. After an error the parser is
  dead: it ignores further input.

The decisions that do not depend on the parsing library (framing, Host,
versions, targets, limits) live in :mod:`greenserve.protocol.rules`, so both
backends make them the same way.
"""

from __future__ import annotations

import importlib.util
from collections import deque
from dataclasses import dataclass
from typing import Final, Protocol

from greenserve.errors import ConfigError, ProtocolError


class _End:
    """Sentinel: the current request's body is complete."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "END"


END: Final = _End()

Event = "Request | bytes | _End | ProtocolError"


class Request:
    """A validated request head. Plain attributes: built once per request."""

    __slots__ = (
        "chunked",
        "content_length",
        "expect_continue",
        "headers",
        "keep_alive",
        "method",
        "target",
        "upgrade",
        "version",
    )

    def __init__(
        self,
        method: str,
        target: bytes,
        version: str,
        headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
        content_length: int | None,
        chunked: bool,
        expect_continue: bool,
        upgrade: bytes | None,
    ) -> None:
        #: ``"GET"``: a token, decoded as latin-1.
        self.method = method
        #: The request target exactly as sent (origin, absolute or asterisk form).
        self.target = target
        #: ``"1.1"`` or ``"1.0"``.
        self.version = version
        #: Field lines in order, names as sent, values without surrounding whitespace.
        self.headers = headers
        #: Whether the client wants the connection kept open after this exchange.
        self.keep_alive = keep_alive
        #: ``None`` when there is no Content-Length (chunked, or no body).
        self.content_length = content_length
        self.chunked = chunked
        #: ``Expect: 100-continue`` on HTTP/1.1: send 100 before reading the body.
        self.expect_continue = expect_continue
        #: The ``Upgrade`` value when the client proposed a protocol switch.
        self.upgrade = upgrade

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target!r} HTTP/{self.version}>"


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one request may make the server hold."""

    request_line: int = 4094
    fields: int = 100
    field_size: int = 8190
    #: 0 means unlimited.
    body_size: int = 100 * 1024 * 1024

    @property
    def head_size(self) -> int:
        """The most bytes a whole head may take, CRLFs included."""
        return self.request_line + 2 + self.fields * (self.field_size + 2) + 2


class Parser(Protocol):
    """What a connection needs from an HTTP/1.1 request parser backend."""

    #: ``"h11"`` or ``"httptools"``.
    name: str
    events: deque

    def feed(self, data: bytes) -> None:
        """Parse ``data``; append the events it completes to :attr:`events`."""

    def feed_eof(self) -> None:
        """The client sent EOF: a half-received request becomes an error event."""

    def resume(self) -> None:
        """Continue parsing after a request that proposed an ``Upgrade``.

        The parser stops after such a request, because what follows may not be
        HTTP. When the server answers it as plain HTTP instead, it resumes.
        """

    def take_pending(self) -> bytes:
        """Bytes received after an upgrade request, for the new protocol."""


BACKENDS = ("h11", "httptools")


def httptools_available() -> bool:
    return importlib.util.find_spec("httptools") is not None


def resolve_backend_name(name: str) -> str:
    """``auto`` means httptools when it is importable (CPython), else h11."""
    if name == "auto":
        return "httptools" if httptools_available() else "h11"
    if name == "httptools" and not httptools_available():
        raise ConfigError("--http httptools: the httptools package is not installed")
    if name not in BACKENDS:
        raise ConfigError(f"unknown HTTP parser {name!r}; choose auto, h11 or httptools")
    return name


def backend_class(name: str) -> type:
    """The parser class for ``name``, imported lazily so h11 users never load httptools.

    Construct parsers as ``backend_class(name)(limits)``.
    """
    if resolve_backend_name(name) == "httptools":
        from greenserve.protocol.httptools_backend import HttptoolsParser

        return HttptoolsParser
    from greenserve.protocol.h11_backend import H11Parser

    return H11Parser


def new_parser(name: str, limits: Limits | None = None) -> Parser:
    """One parser for ``name`` (``auto``, ``h11`` or ``httptools``)."""
    parser: Parser = backend_class(name)(limits or Limits())
    return parser


__all__ = [
    "END",
    "Limits",
    "Parser",
    "ProtocolError",
    "Request",
    "backend_class",
    "new_parser",
    "resolve_backend_name",
]
