"""HTTP/1.1 request rules that do not depend on the parsing library.

Both backends hand the parsed request line and field lines to
:func:`finish_head`, which makes every framing and routing decision once:
versions, request-target forms, ``Host``, ``Content-Length`` versus
``Transfer-Encoding`` (request smuggling), limits and keep-alive. A request
that breaks a rule raises :class:`ProtocolError` and never reaches the
application.
"""

from __future__ import annotations

import re

from greenserve.errors import ProtocolError
from greenserve.protocol.events import Limits, Request

_HOST = 1
_CONTENT_LENGTH = 2
_TRANSFER_ENCODING = 3
_CONNECTION = 4
_EXPECT = 5
_UPGRADE = 6

_SPECIAL = {
    b"host": _HOST,
    b"content-length": _CONTENT_LENGTH,
    b"transfer-encoding": _TRANSFER_ENCODING,
    b"connection": _CONNECTION,
    b"expect": _EXPECT,
    b"upgrade": _UPGRADE,
}

#: 18 digits: below 2**63, the largest length either parser can represent.
_MAX_LENGTH_DIGITS = 18


#: C0 controls and DEL, except HTAB, CR and LF (checked separately): never valid in a head.
_CONTROLS = bytes([*range(0x01, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])

#: RFC 9112 3.2 / RFC 3986: IP-literal, IPv4address or reg-name, and an optional port.
_HOST_VALUE = re.compile(rb"(?:\[[0-9A-Za-z:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(?::[0-9]*)?")


def check_raw_head(data: bytes | bytearray, complete: bool) -> None:
    """Reject NUL and other controls, bare CR, bare LF and obs-fold in (part of) a request head.

    llhttp rejects these itself, h11 tolerates bare LF and unfolds obs-fold;
    the request parser also runs this on heads that arrive in pieces, so a
    head using bare LF line ends is refused at once instead of waiting for a
    CRLF CRLF that never comes. ``data`` never starts between a CR and its LF;
    while the head is incomplete it may end with a CR whose LF is still to come.
    """
    if data.find(b"\0") >= 0:  # find(), not ``in``: see environ.split_target
        raise ProtocolError(400, "NUL in request head")
    if len(data.translate(None, _CONTROLS)) != len(data):
        raise ProtocolError(400, "control character in request head")
    crlf = data.count(b"\r\n")
    if data.count(b"\n") != crlf:
        raise ProtocolError(400, "bare LF in request head")
    bare_cr = data.count(b"\r") - crlf
    if bare_cr and not (bare_cr == 1 and not complete and data.endswith(b"\r")):
        raise ProtocolError(400, "bare CR in request head")
    if data.find(b"\n ") >= 0 or data.find(b"\n\t") >= 0:
        raise ProtocolError(400, "obsolete line folding in request head")


def parse_content_length(value: bytes) -> int:
    """``1*DIGIT`` only: no sign, no spaces inside, no list form (``5, 5``)."""
    if not value or not value.isdigit() or not value.isascii():
        raise ProtocolError(400, f"invalid Content-Length {value[:40]!r}")
    if len(value) > _MAX_LENGTH_DIGITS:
        raise ProtocolError(400, "Content-Length too large")
    return int(value)


def check_target(method: str, target: bytes) -> None:
    """The request-target form must suit the method (RFC 9112 section 3.2)."""
    if target[:1] == b"/":
        return  # origin-form, by far the most common
    if target == b"*":
        if method != "OPTIONS":
            raise ProtocolError(400, "asterisk-form target is only allowed with OPTIONS")
        return
    lower = target[:8].lower()
    if lower.startswith((b"http://", b"https://")):
        return  # absolute-form
    raise ProtocolError(400, f"invalid request target {target[:60]!r}")


def _tokens(value: bytes) -> list[bytes]:
    return [token.strip().lower() for token in value.split(b",")]


def finish_head(
    method: str,
    target: bytes,
    version: str,
    headers: list[tuple[bytes, bytes]],
    limits: Limits,
) -> Request:
    """Validate a parsed head and decide its framing. Raises ProtocolError."""
    if version not in {"1.1", "1.0"}:
        if version == "0.9":
            raise ProtocolError(400, "request line without an HTTP version")
        raise ProtocolError(505, f"HTTP version {version} is not supported")
    if len(method) + len(target) + 10 > limits.request_line:
        raise ProtocolError(414, "request line too long")
    if method == "CONNECT":
        raise ProtocolError(405, "CONNECT is not supported")
    check_target(method, target)
    if len(headers) > limits.fields:
        raise ProtocolError(431, f"more than {limits.fields} header fields")

    field_size = limits.field_size
    hosts = 0
    content_length: int | None = None
    transfer_encoding: list[bytes] | None = None
    connection: list[bytes] = []
    expect_continue = False
    upgrade: bytes | None = None
    for name, value in headers:
        if len(name) + len(value) > field_size:
            raise ProtocolError(431, f"header field {name[:40]!r} too large")
        # Both parsers lower-case names already; the framing checks do not rely on it.
        kind = _SPECIAL.get(name.lower())
        if kind is None:
            continue
        if kind == _HOST:
            hosts += 1
            if _HOST_VALUE.fullmatch(value) is None:
                raise ProtocolError(400, f"invalid Host {value[:60]!r}")
        elif kind == _CONTENT_LENGTH:
            if content_length is not None:
                raise ProtocolError(400, "more than one Content-Length")
            content_length = parse_content_length(value)
        elif kind == _TRANSFER_ENCODING:
            if transfer_encoding is None:
                transfer_encoding = []
            transfer_encoding += _tokens(value)
        elif kind == _CONNECTION:
            connection += _tokens(value)
        elif kind == _EXPECT:
            expect_continue = value.lower() == b"100-continue"
        else:
            upgrade = value

    if hosts > 1:
        raise ProtocolError(400, "more than one Host")
    if hosts == 0 and version == "1.1":
        raise ProtocolError(400, "HTTP/1.1 request without Host")

    chunked = False
    if transfer_encoding is not None:
        if version == "1.0":
            raise ProtocolError(400, "Transfer-Encoding in an HTTP/1.0 request")
        if content_length is not None:
            raise ProtocolError(400, "both Content-Length and Transfer-Encoding")
        if transfer_encoding != [b"chunked"]:
            raise ProtocolError(400, "unsupported Transfer-Encoding (only 'chunked' is accepted)")
        chunked = True
    elif content_length and limits.body_size and content_length > limits.body_size:
        raise ProtocolError(413, f"body of {content_length} bytes exceeds {limits.body_size}")

    if version == "1.1":
        keep_alive = b"close" not in connection
    else:
        keep_alive = b"keep-alive" in connection and b"close" not in connection
        expect_continue = False  # 100 Continue is an HTTP/1.1 mechanism
    if upgrade is not None and b"upgrade" not in connection:
        upgrade = None  # Upgrade without 'Connection: upgrade' proposes nothing

    return Request(
        method,
        target,
        version,
        headers,
        keep_alive,
        content_length,
        chunked,
        expect_continue,
        upgrade,
    )
