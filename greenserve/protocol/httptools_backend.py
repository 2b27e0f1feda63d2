"""The fast parser backend: llhttp (through httptools), strict mode.

llhttp rejects bare CR/LF, NUL and control characters, obs-fold, spaces
before the colon, bad chunk sizes and duplicate or conflicting lengths by
itself. What it leaves open (HTTP/1.1 without Host, HTTP/1.0 with
Transfer-Encoding, codings other than chunked, target forms, limits) is
decided by :func:`greenserve.protocol.rules.finish_head`, exactly as for h11.

This is the only module that imports httptools.
"""

from __future__ import annotations

from collections import deque

import httptools

from greenserve.errors import ProtocolError
from greenserve.protocol.parser import END, Limits, Request
from greenserve.protocol.rules import finish_head

_HttpParserError = httptools.HttpParserError
_HttpParserCallbackError = httptools.HttpParserCallbackError
_HttpParserUpgrade = httptools.HttpParserUpgrade
_HttpParserInvalidMethodError = httptools.HttpParserInvalidMethodError
_HttpParserInvalidURLError = httptools.HttpParserInvalidURLError


def _translate(exc: Exception) -> ProtocolError:
    """llhttp's exception for a bad request, as the answer the client gets."""
    if isinstance(exc, _HttpParserCallbackError):
        cause = exc.__context__
        if isinstance(cause, ProtocolError):
            return cause
        return ProtocolError(400, f"invalid request ({cause!r})")  # pragma: no cover
    if isinstance(exc, _HttpParserInvalidMethodError):
        return ProtocolError(400, "invalid request method")
    if isinstance(exc, _HttpParserInvalidURLError):
        return ProtocolError(400, "invalid request target")
    reason = str(exc)
    if "PRI" in reason:
        return ProtocolError(505, "HTTP/2 connection preface on an HTTP/1.1 port")
    if reason == "Invalid HTTP version":
        return ProtocolError(505, f"invalid HTTP version ({reason})")
    return ProtocolError(400, reason or "invalid request")


class HttptoolsParser:
    """Request parser over llhttp. See :class:`greenserve.protocol.parser.Parser`."""

    name = "httptools"

    __slots__ = (
        "_body_size",
        "_dead",
        "_head_bytes",
        "_headers",
        "_in_head",
        "_parser",
        "_paused",
        "_pending",
        "_request",
        "_trailer_fields",
        "_url",
        "events",
        "limits",
    )

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.events: deque = deque()
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._request: Request | None = None
        self._in_head = False
        self._head_bytes = 0
        self._body_size = 0
        self._trailer_fields = 0
        self._dead = False
        self._paused = False
        self._pending = b""

    # -- driving -----------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self._dead:
            return
        if self._paused:
            self._pending += data
            if len(self._pending) > self.limits.head_size:
                self._fail(ProtocolError(400, "data after an upgrade request"))
            return
        try:
            self._parser.feed_data(data)
        except _HttpParserUpgrade as exc:
            self._paused = True
            self._pending = data[exc.args[0] :]
            return
        except _HttpParserError as exc:  # includes the callback, method and URL errors
            self._fail(_translate(exc))
            return
        if self._in_head:
            # The whole buffer went into an unfinished head: bound what llhttp holds.
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.head_size:
                self._fail(ProtocolError(431, "request head too large"))

    def feed_eof(self) -> None:
        if self._dead or self._paused:
            return
        if self._in_head or self._request is not None:
            self._fail(ProtocolError(400, "connection closed in the middle of a request"))

    def resume(self) -> None:
        if not self._paused:
            return
        self._paused = False
        pending, self._pending = self._pending, b""
        self._parser = httptools.HttpRequestParser(self)
        if pending:
            self.feed(pending)

    def take_pending(self) -> bytes:
        pending, self._pending = self._pending, b""
        self._dead = True
        return pending

    def _fail(self, error: ProtocolError) -> None:
        self._dead = True
        self.events.append(error)

    # -- llhttp callbacks ----------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        url = self._url + url if self._url else url
        if len(url) > self.limits.request_line:
            raise ProtocolError(414, "request line too long")
        self._url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._request is None:
            headers = self._headers
            headers.append((name, value))
            if len(headers) > self.limits.fields:
                raise ProtocolError(431, f"more than {self.limits.fields} header fields")
        else:
            # A trailer field: bounded, then dropped (WSGI has no trailers).
            self._trailer_fields += 1
            if self._trailer_fields > self.limits.fields:
                raise ProtocolError(431, "too many trailer fields")
            if len(name) + len(value) > self.limits.field_size:
                raise ProtocolError(431, "trailer field too large")

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        request = finish_head(
            parser.get_method().decode("ascii"),
            self._url,
            parser.get_http_version(),
            self._headers,
            self.limits,
        )
        self._request = request
        self.events.append(request)

    def on_body(self, body: bytes) -> None:
        request = self._request
        if request is not None and request.chunked:
            self._body_size += len(body)
            limit = self.limits.body_size
            if limit and self._body_size > limit:
                raise ProtocolError(413, f"chunked body exceeds {limit} bytes")
        self.events.append(body)

    def on_message_complete(self) -> None:
        self.events.append(END)
        self._request = None
        self._url = b""
        self._headers = []
        self._body_size = 0
        self._trailer_fields = 0
