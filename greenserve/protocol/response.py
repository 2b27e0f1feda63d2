"""Response heads: validation of what the application sends, and serialisation.

Every rule about response headers lives here: status lines must be
``NNN reason`` with no control characters; header names must be tokens;
values must not contain CR, LF or NUL (no header injection); framing headers
(``Connection``, ``Keep-Alive``, ``Transfer-Encoding``) belong to the server;
1xx statuses cannot be final. A violation raises :class:`ResponseError`,
which the worker turns into a 500 and one log line. Which responses carry a
body, and how it is framed, is decided by :mod:`greenserve.protocol.exchange`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BAD_VALUE = re.compile(r"[\r\n\0]")
_STATUS = re.compile(r"([1-9][0-9]{2}) [^\r\n\0]*")

#: Hop-by-hop fields the server decides; the application's copies are dropped.
_SERVER_MANAGED = frozenset(("connection", "keep-alive", "transfer-encoding", "proxy-connection"))

_NAME_CACHE: dict[str, int] = {}
_STATUS_CACHE: dict[str, tuple[int, bytes]] = {}
_HEAD_CACHE: dict[tuple, tuple[bytes, int | None, bool, bool, bool]] = {}
#: ``Content-Length: N`` lines: formatting one takes 76 ns, the lookup 31 ns (timeit).
_LENGTH_LINES: dict[int, bytes] = {}
#: Bound on each cache: keys come from applications, never from clients, but stay bounded anyway.
_CACHE_LIMIT = 1024

_KIND_PLAIN = 0
_KIND_CONTENT_LENGTH = 1
_KIND_MANAGED = 2
_KIND_CONNECTION = 3
_KIND_DATE = 4
_KIND_SERVER = 5

LAST_CHUNK = b"0\r\n\r\n"


class ResponseError(Exception):
    """The application's status or headers are invalid; the client gets a 500."""


def _name_kind(name: str) -> int:
    kind = _NAME_CACHE.get(name)
    if kind is not None:
        return kind
    if not isinstance(name, str):
        raise ResponseError(f"header name {name!r} is not a str")
    if _TOKEN.fullmatch(name) is None:
        raise ResponseError(f"invalid header name {name!r}")
    lower = name.lower()
    if lower == "content-length":
        kind = _KIND_CONTENT_LENGTH
    elif lower == "connection":
        kind = _KIND_CONNECTION
    elif lower in _SERVER_MANAGED:
        kind = _KIND_MANAGED
    elif lower == "date":
        kind = _KIND_DATE
    elif lower == "server":
        kind = _KIND_SERVER
    else:
        kind = _KIND_PLAIN
    _remember(_NAME_CACHE, name, kind)
    return kind


def parse_status(status: str) -> tuple[int, bytes]:
    """``"200 OK"`` -> ``(200, b"HTTP/1.1 200 OK\\r\\n")``."""
    cached = _STATUS_CACHE.get(status)
    if cached is not None:
        return cached
    if not isinstance(status, str):
        raise ResponseError(f"status {status!r} is not a str")
    match = _STATUS.fullmatch(status)
    if match is None:
        raise ResponseError(f"invalid status {status[:60]!r}: expected e.g. '200 OK'")
    code = int(match.group(1))
    if code < 200:
        raise ResponseError(f"status {code} cannot be a final response")
    try:
        line = b"HTTP/1.1 " + status.encode("latin-1") + b"\r\n"
    except UnicodeEncodeError:
        raise ResponseError(f"status {status!r} is not latin-1") from None
    result = (code, line)
    _remember(_STATUS_CACHE, status, result)
    return result


class Head:
    """A validated response head, before the server adds framing headers."""

    __slots__ = (
        "block",
        "close",
        "code",
        "content_length",
        "has_date",
        "has_server",
        "headers",
        "status_line",
    )

    def __init__(self, status: str, headers: list[tuple[str, str]]) -> None:
        code_line = _STATUS_CACHE.get(status)
        self.code, self.status_line = code_line if code_line is not None else parse_status(status)
        #: The application's headers, as given (for the access log): str pairs, or
        #: byte pairs from an ASGI application.
        self.headers: Any = headers
        #: The serialised application headers, ``Content-Length`` and hop-by-hop ones excepted.
        self.block: bytes
        #: The application's Content-Length, if it gave one (the exchange decides whether it is sent).
        self.content_length: int | None
        #: The application asked to close the connection (``Connection: close``).
        self.close: bool
        self.has_date: bool
        self.has_server: bool
        try:  # applications send the same header lists again and again: checked once each
            checked = _HEAD_CACHE[tuple(headers)]
        except (KeyError, TypeError):
            checked = _checked(headers, _check_headers)
        self.block, self.content_length, self.close, self.has_date, self.has_server = checked

    @classmethod
    def from_asgi(cls, code: int, headers: Iterable[tuple[bytes, bytes]]) -> Head:
        """A head from ASGI's ``http.response.start``: an int status and byte headers.

        The same rules as for WSGI; the byte pairs are checked as latin-1 text
        (once per distinct list, as for WSGI).
        """
        head = cls.__new__(cls)
        status = _ASGI_STATUS.get(code)  # any hashable: a str or a float is simply not found
        head.code, head.status_line = _asgi_status(code) if status is None else status
        if not isinstance(headers, (list, tuple)):
            headers = list(headers)  # any iterable: read it once
        head.headers = headers
        try:  # as in __init__
            checked = _HEAD_CACHE[tuple(headers)]
        except (KeyError, TypeError):
            checked = _checked(headers, _check_asgi_headers)
        head.block, head.content_length, head.close, head.has_date, head.has_server = checked
        return head


_Checked = tuple[bytes, int | None, bool, bool, bool]


def _remember(cache: dict, key: Any, value: Any) -> None:
    """Cache ``value`` under ``key`` while the cache is below its bound (clients cannot grow it)."""
    if len(cache) < _CACHE_LIMIT:
        cache[key] = value


def _checked(headers: Any, check: Any) -> _Checked:
    """``check(headers)``, once per distinct header list: applications send the same lists again and again."""
    key: tuple | None
    try:
        key = tuple(headers)
        checked = _HEAD_CACHE.get(key)
    except TypeError:  # unhashable items: validation says what is wrong with them
        key = checked = None
    if checked is None:
        checked = check(headers)
        if key is not None:
            if len(_HEAD_CACHE) >= _CACHE_LIMIT:
                _HEAD_CACHE.clear()  # a new set of lists (a deploy, a cache-busting app): start over
            _HEAD_CACHE[key] = checked
    return checked


def _check_asgi_headers(headers: Iterable[tuple[bytes, bytes]]) -> _Checked:
    try:
        text = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]
    except (AttributeError, TypeError, ValueError):
        raise ResponseError(f"ASGI headers must be (bytes, bytes) pairs, got {headers!r:.200}") from None
    return _check_headers(text)


#: ASGI status code -> (code, status line), for the codes already seen.
_ASGI_STATUS: dict[int, tuple[int, bytes]] = {}


def _asgi_status(code: int) -> tuple[int, bytes]:
    if not isinstance(code, int) or isinstance(code, bool):  # HTTPStatus is an int: welcome
        raise ResponseError(f"ASGI: invalid http.response.start: status {code!r} is not an int")
    if not 200 <= code <= 999:
        raise ResponseError(f"status {code} cannot be a final response")
    status = parse_status(status_text(int(code)))
    _remember(_ASGI_STATUS, int(code), status)
    return status


def _check_headers(headers: list[tuple[str, str]]) -> tuple[bytes, int | None, bool, bool, bool]:
    """Validate application headers -> (block, content_length, close, has_date, has_server)."""
    content_length: int | None = None
    close = has_date = has_server = False
    kinds = _NAME_CACHE
    lines = []
    try:
        for name, value in headers:
            kind = kinds.get(name)
            if kind is None:
                kind = _name_kind(name)
            if kind:
                if not isinstance(value, str):
                    raise ResponseError(f"header value {value!r} is not a str")
                if kind == _KIND_CONTENT_LENGTH:
                    length = _content_length(value)
                    if content_length is not None and content_length != length:
                        raise ResponseError("conflicting Content-Length headers")
                    content_length = length
                    continue  # the server writes it, once
                if kind == _KIND_CONNECTION:
                    if "close" in value.lower():
                        close = True
                    continue
                if kind == _KIND_MANAGED:
                    continue
                if kind == _KIND_DATE:
                    has_date = True
                else:
                    has_server = True
            lines.append(name + ": " + value + "\r\n")
    except (TypeError, ValueError):
        raise ResponseError(f"headers must be a list of (str, str) tuples, got {headers!r:.200}") from None
    block = "".join(lines)
    # Names are validated tokens, so any CR or LF beyond one pair per line,
    # or any NUL, came from a value: header injection.
    count = len(lines)
    if block.count("\n") != count or block.count("\r") != count or "\0" in block:
        raise ResponseError("header value contains CR, LF or NUL (header injection)")
    try:
        encoded = block.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ResponseError(f"header value is not latin-1: {exc}") from None
    return encoded, content_length, close, has_date, has_server


def _content_length(value: str) -> int:
    if not value.strip().isdigit() or not value.isascii():
        raise ResponseError(f"invalid Content-Length {value!r}")
    return int(value)


_STATUS_TEXT: dict[int, str] = {}
#: RFC 9110 renamed these; Python < 3.13 still has the old phrases.
_RFC9110_PHRASES = {
    413: "Content Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    422: "Unprocessable Content",
}


def reason_phrase(code: int) -> str:
    phrase = _RFC9110_PHRASES.get(code)
    if phrase is not None:
        return phrase
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        classes = {2: "Success", 3: "Redirection", 4: "Client Error", 5: "Server Error"}
        return classes.get(code // 100, "Status")


def status_text(code: int) -> str:
    """``200`` -> ``"200 OK"``; an unregistered code gets a generic phrase."""
    text = _STATUS_TEXT.get(code)
    if text is None:
        text = f"{code} {reason_phrase(code)}"
        _remember(_STATUS_TEXT, code, text)
    return text


def serialize(
    head: Head,
    date_line: bytes,
    server_line: bytes,
    content_length: int | None,
    chunked: bool,
    keep_alive: bool,
    http10: bool,
    extra: bytes = b"",
) -> bytes:
    """The bytes of the response head, framing headers included.

    ``extra``: whole header lines the server adds (a request id), or b"".
    """
    parts = [head.status_line, head.block]
    if content_length is not None:
        line = _LENGTH_LINES.get(content_length)
        if line is None:
            line = b"Content-Length: %d\r\n" % content_length
            _remember(_LENGTH_LINES, content_length, line)
        parts.append(line)
    elif chunked:
        parts.append(b"Transfer-Encoding: chunked\r\n")
    if not keep_alive:
        parts.append(b"Connection: close\r\n")
    elif http10:
        parts.append(b"Connection: keep-alive\r\n")
    if not head.has_date:
        parts.append(date_line)
    if not head.has_server:
        parts.append(server_line)
    if extra:
        parts.append(extra)
    parts.append(b"\r\n")
    return b"".join(parts)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def date_line(timestamp: float) -> bytes:
    return b"Date: " + formatdate(timestamp, usegmt=True).encode("ascii") + b"\r\n"


def server_line(name: str) -> bytes:
    """The Server header line for ``--server-header`` (empty: no header)."""
    if not name:
        return b""
    if _BAD_VALUE.search(name) is not None:
        raise ValueError("server header contains CR, LF or NUL")
    return b"Server: " + name.encode("latin-1") + b"\r\n"


def error_response(status: int, date: bytes, server: bytes, detail: str = "") -> bytes:
    """A complete plain-text response the server sends on its own, then closes."""
    phrase = reason_phrase(status)
    body = f"{status} {phrase}\n".encode("ascii")
    if detail:
        body += detail.encode("ascii", "replace") + b"\n"
    return b"".join(
        [
            b"HTTP/1.1 %d %s\r\n" % (status, phrase.encode("ascii")),
            b"Content-Type: text/plain; charset=utf-8\r\n",
            b"Content-Length: %d\r\n" % len(body),
            b"Connection: close\r\n",
            date,
            server,
            b"\r\n",
            body,
        ]
    )


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
