"""HTTP/1.1 request rules that do not depend on the parsing library.

Both backends check the grammar of a head (method and field names are
tokens, values are field-content, CRLF line ends) and hand the request line
and field lines to :func:`finish_head`, which makes every other decision
once: versions, methods, request-target forms, ``Host``, ``Content-Length``
versus ``Transfer-Encoding`` (request smuggling), transfer codings, limits
and keep-alive. A request that breaks a rule raises :class:`ProtocolError`
and never reaches the application.

What is malformed gets 400; what is well-formed but beyond this server gets
501 (a method or transfer coding it does not implement, RFC 9110 9.1 and
RFC 9112 6.1) or 505 (a major HTTP version other than 1).
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
_FORWARDED = 7

_SPECIAL = {
    b"host": _HOST,
    b"content-length": _CONTENT_LENGTH,
    b"transfer-encoding": _TRANSFER_ENCODING,
    b"connection": _CONNECTION,
    b"expect": _EXPECT,
    b"upgrade": _UPGRADE,
    # Noted so that requests without them skip the proxy rules (protocol/proxy.py) entirely.
    b"forwarded": _FORWARDED,
    b"x-forwarded-for": _FORWARDED,
    b"x-forwarded-proto": _FORWARDED,
    b"x-forwarded-host": _FORWARDED,
    b"x-forwarded-port": _FORWARDED,
    b"x-forwarded-prefix": _FORWARDED,
}

#: 18 digits: below 2**63, the largest length either parser can represent.
_MAX_LENGTH_DIGITS = 18

#: The methods passed to the application. Methods are case-sensitive tokens
#: (RFC 9110 9.1): ``get`` is not ``GET``. These are the IANA HTTP Method
#: Registry (RFC 9110 16.1, RFC 7237, RFC 9113's PRI) and the others llhttp
#: recognises (PURGE, SOURCE, QUERY and the UPnP ones). Any other token is a
#: method this server does not recognise: 501 (RFC 9110 15.6.2).
METHODS: frozenset[str] = frozenset(
    {
        # RFC 9110
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "DELETE",
        "CONNECT",
        "OPTIONS",
        "TRACE",
        # RFC 5789, RFC 9113 3.4
        "PATCH",
        "PRI",
        # WebDAV and its extensions (RFC 7237's registrations)
        "ACL",
        "BASELINE-CONTROL",
        "BIND",
        "CHECKIN",
        "CHECKOUT",
        "COPY",
        "LABEL",
        "LINK",
        "LOCK",
        "MERGE",
        "MKACTIVITY",
        "MKCALENDAR",
        "MKCOL",
        "MKREDIRECTREF",
        "MKWORKSPACE",
        "MOVE",
        "ORDERPATCH",
        "PROPFIND",
        "PROPPATCH",
        "REBIND",
        "REPORT",
        "SEARCH",
        "UNBIND",
        "UNCHECKOUT",
        "UNLINK",
        "UNLOCK",
        "UPDATE",
        "UPDATEREDIRECTREF",
        "VERSION-CONTROL",
        # not registered, but recognised by llhttp and used in the wild
        "QUERY",
        "PURGE",
        "SOURCE",
        "M-SEARCH",
        "NOTIFY",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
    }
)

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED_STRING = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
#: One element of a Transfer-Encoding list: ``token *( OWS ";" OWS transfer-parameter )``
#: with ``transfer-parameter = token BWS "=" BWS ( token / quoted-string )`` (RFC 9112 6.1,
#: RFC 9110 10.1.4). Group 1 is the coding's name, group 2 its parameters.
_TRANSFER_CODING = re.compile(
    rb"(%s)((?:[ \t]*;[ \t]*%s[ \t]*=[ \t]*(?:%s|%s))*)" % (_TOKEN, _TOKEN, _TOKEN, _QUOTED_STRING)
)
#: The comma between two list elements, with its OWS (RFC 9110 5.6.1).
_LIST_COMMA = re.compile(rb"[ \t]*,[ \t]*")


#: C0 controls and DEL, except HTAB, CR and LF (checked separately): never valid in a head.
_CONTROLS = bytes([*range(0x01, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])

#: RFC 9112 3.2 / RFC 3986: IP-literal, IPv4address or reg-name, and an optional port.
_HOST_VALUE = re.compile(rb"(?:\[[0-9A-Za-z:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(?::[0-9]*)?")
#: Host values found valid. A server sees few distinct ones; the regular expression takes
#: 185 ns a request, the lookup about 50 (timeit, hashing a new value). Bounded: clients choose them.
_VALID_HOSTS: set[bytes] = set()
_VALID_HOSTS_LIMIT = 256


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
    """A list of tokens (Connection), lower-cased, without the OWS around each element."""
    return [token.strip(b" \t").lower() for token in value.split(b",")]


def check_version(version: str) -> str:
    """The version a request is processed as (``"1.1"`` or ``"1.0"``), from its ``"X.Y"``.

    The backends only pass ``DIGIT "." DIGIT`` here: anything else in the
    request line is malformed (400) before this is called.
    """
    if version in {"1.1", "1.0"}:
        return version
    if version[:2] == "1.":
        # A later minor version of HTTP/1 is compatible by design: process it
        # as the highest minor version this server conforms to (RFC 9110 2.5).
        return "1.1"
    if version == "0.9":
        # An HTTP/0.9 request has no version in its request line: one that
        # claims "HTTP/0.9" is not any version's syntax.
        raise ProtocolError(400, "request line with an HTTP/0.9 version")
    # A well-formed version of another major version (HTTP/2.0 or the HTTP/2
    # preface, HTTP/3.0): this server speaks HTTP/1 only (RFC 9110 15.6.6).
    raise ProtocolError(505, f"HTTP version {version} is not supported")


def check_transfer_encoding(values: list[bytes]) -> None:
    """Return when the Transfer-Encoding ``values`` (one per field line) frame a chunked body.

    Otherwise raise: 400 when the list is malformed or when chunked is not
    the final coding, applied once and without parameters; 501 for a
    well-formed list that puts a coding this server does not decode (gzip,
    ...) under the final chunked.
    """
    if len(values) == 1 and values[0].lower() == b"chunked":
        return  # by far the most common value
    codings: list[tuple[bytes, bytes]] = []  # (name, parameters)
    for value in values:
        pos = 0
        while True:
            match = _TRANSFER_CODING.match(value, pos)
            if match is None:
                # Includes empty list elements (", chunked", "chunked,"). RFC 9110
                # 5.6.1 asks recipients to ignore a few of those in lists, but a
                # framing field is where two parsers must not disagree: refused.
                raise ProtocolError(400, f"malformed Transfer-Encoding {value[:60]!r}")
            codings.append((match[1].lower(), match[2]))
            pos = match.end()
            if pos == len(value):
                break
            comma = _LIST_COMMA.match(value, pos)
            if comma is None:
                raise ProtocolError(400, f"malformed Transfer-Encoding {value[:60]!r}")
            pos = comma.end()
    name, parameters = codings[-1]
    if name != b"chunked":
        # Then the body's length cannot be determined: RFC 9112 6.3 says a
        # server MUST answer 400 and close, which takes precedence over 6.1's
        # SHOULD answer 501 for a coding it does not understand.
        raise ProtocolError(400, "chunked is not the final transfer coding")
    if parameters:
        # chunked defines no parameters; another parser may not see 'chunked' here.
        raise ProtocolError(400, "parameters on the chunked transfer coding")
    if any(coding == b"chunked" for coding, _ in codings[:-1]):
        raise ProtocolError(400, "chunked applied more than once (RFC 9112 6.1)")
    # The body's framing is known, but not how to decode what it frames.
    unknown = codings[0][0].decode("ascii")
    raise ProtocolError(501, f"transfer coding {unknown[:40]!r} is not implemented")


def check_host(value: bytes) -> None:
    """Raise ProtocolError unless ``value`` is a valid Host field value (remembered if so)."""
    if _HOST_VALUE.fullmatch(value) is None:
        raise ProtocolError(400, f"invalid Host {value[:60]!r}")
    if len(_VALID_HOSTS) < _VALID_HOSTS_LIMIT:
        _VALID_HOSTS.add(value)


def finish_head(
    method: str,
    target: bytes,
    version: str,
    headers: list[tuple[bytes, bytes]],
    limits: Limits,
) -> Request:
    """Validate a parsed head and decide its framing. Raises ProtocolError.

    ``method`` is a token, ``version`` is ``"X.Y"`` and field values have no
    leading or trailing whitespace: the backends guarantee that much. The
    checks run in one order for both backends, so a head that breaks several
    rules gets the same answer whichever parser read it.
    """
    if version not in {"1.1", "1.0"}:
        version = check_version(version)  # first: the rest is read as this version
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
    forwarded = False
    for name, value in headers:
        if len(name) + len(value) > field_size:
            raise ProtocolError(431, f"header field {name[:40]!r} too large")
        # Both parsers lower-case names already; the framing checks do not rely on it.
        kind = _SPECIAL.get(name.lower())
        if kind is None:
            continue
        if kind == _HOST:
            hosts += 1
            if value not in _VALID_HOSTS:
                check_host(value)
        elif kind == _CONTENT_LENGTH:
            if content_length is not None:
                raise ProtocolError(400, "more than one Content-Length")
            content_length = parse_content_length(value)
        elif kind == _TRANSFER_ENCODING:
            if transfer_encoding is None:
                transfer_encoding = []
            transfer_encoding.append(value)
        elif kind == _CONNECTION:
            connection += _tokens(value)
        elif kind == _EXPECT:
            expect_continue = value.lower() == b"100-continue"
        elif kind == _FORWARDED:
            forwarded = True
        else:
            upgrade = value

    if hosts > 1:
        raise ProtocolError(400, "more than one Host")
    if hosts == 0 and version == "1.1":
        raise ProtocolError(400, "HTTP/1.1 request without Host")

    chunked = False
    if transfer_encoding is not None:
        if version == "1.0":
            # RFC 9112 6.1: the framing of such a message is faulty.
            raise ProtocolError(400, "Transfer-Encoding in an HTTP/1.0 request")
        if content_length is not None:
            # RFC 9112 6.3: "ought to be handled as an error": the smuggling classic.
            raise ProtocolError(400, "both Content-Length and Transfer-Encoding")
        check_transfer_encoding(transfer_encoding)
        chunked = True
    # After every 400: a malformed request is malformed whatever its method.
    if method not in METHODS:
        raise ProtocolError(501, f"method {method[:40]!r} is not implemented")
    if not chunked and content_length and limits.body_size and content_length > limits.body_size:
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
        forwarded,
    )
