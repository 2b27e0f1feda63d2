"""What the request parser produces: heads, body pieces, the end of a body.

Plain data, no behaviour: imported by every other protocol module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


class _End:
    """Sentinel: the current request's body is complete."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "END"


#: The event that ends every request, after its body pieces.
END: Final = _End()


class Request:
    """A validated request head. Plain attributes: built once per request."""

    __slots__ = (
        "chunked",
        "content_length",
        "expect_continue",
        "forwarded",
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
        forwarded: bool = False,
    ) -> None:
        #: ``"GET"``: a token, decoded as latin-1.
        self.method = method
        #: The request target exactly as sent (origin, absolute or asterisk form).
        self.target = target
        #: ``"1.1"`` or ``"1.0"``.
        self.version = version
        #: Field lines in order, names lower-cased by the parser (as ASGI scopes want
        #: them), values as sent without surrounding whitespace.
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
        #: It has a ``Forwarded`` or ``X-Forwarded-*`` field (the proxy rules apply only then).
        self.forwarded = forwarded

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
        return self.request_line + 2 + self.fields * (self.field_size + 4) + 2  # ": " and CRLF
