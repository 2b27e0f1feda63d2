"""The fast head parser: llhttp (through httptools), in its strict mode.

llhttp rejects bare CR/LF, NUL and control characters, obs-fold, spaces
before the colon and malformed lengths by itself; what it leaves open
(HTTP/1.1 without Host, HTTP/1.0 with Transfer-Encoding, codings other than
chunked, target forms, limits) is decided by
:func:`~greenserve.protocol.rules.finish_head`, exactly as for h11.

llhttp only ever sees one complete head at a time; bodies are framed by
:class:`~greenserve.protocol.parser.RequestParser`. After a head with a body
(llhttp then waits for the body) or one that ends its connection (llhttp then
refuses more data), the next head gets a fresh llhttp parser, which costs a
few hundred nanoseconds; keep-alive requests without a body, the common
case, reuse it. Parsing a head never yields, so one instance serves every
connection of a worker.

This is the only module that imports httptools.
"""

from __future__ import annotations

import re

import httptools
from zope.interface import implementer

from greenserve.errors import ProtocolError
from greenserve.interfaces import IHeadParser
from greenserve.protocol.events import Limits, Request
from greenserve.protocol.rules import check_raw_head, finish_head

_HttpParserError = httptools.HttpParserError
_HttpParserCallbackError = httptools.HttpParserCallbackError
_HttpParserUpgrade = httptools.HttpParserUpgrade
_HttpParserInvalidMethodError = httptools.HttpParserInvalidMethodError
_HttpParserInvalidURLError = httptools.HttpParserInvalidURLError
_UPPER_TOKEN = re.compile(rb"[A-Z0-9!#$%&'*+.^_`|~-]+")


def _translate(exc: Exception, head: bytes) -> ProtocolError:
    """llhttp's exception for a bad request, as the answer the client gets."""
    if isinstance(exc, _HttpParserCallbackError):
        cause = exc.__context__
        if isinstance(cause, ProtocolError):
            return cause
        return ProtocolError(400, f"invalid request ({cause!r})")  # pragma: no cover
    if isinstance(exc, _HttpParserInvalidMethodError):
        check_raw_head(head, True)  # what llhttp stopped before seeing decides first
        method = head.split(b" ", 1)[0]
        if _UPPER_TOKEN.fullmatch(method):
            # A well-formed method llhttp does not know: RFC 9110 15.6.2.
            return ProtocolError(501, f"method {method[:20].decode()} is not implemented")
        return ProtocolError(400, "invalid request method")
    if isinstance(exc, _HttpParserInvalidURLError):
        return ProtocolError(400, "invalid request target")
    reason = str(exc)
    if reason == "Invalid HTTP version":
        return ProtocolError(505, "invalid HTTP version")
    return ProtocolError(400, reason or "invalid request")


@implementer(IHeadParser)
class HttptoolsHeadParser:
    """See :class:`greenserve.protocol.parser.HeadParser`."""

    name = "httptools"

    __slots__ = ("_complete", "_headers", "_parser", "_request", "_url", "limits")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._request: Request | None = None
        self._complete = True

    def parse(self, head: bytes) -> Request:
        if not self._complete:
            self._parser = httptools.HttpRequestParser(self)
        self._complete = False
        self._request = None
        self._url = b""
        self._headers = []
        try:
            self._parser.feed_data(head)
        except _HttpParserUpgrade:
            self._complete = False  # llhttp stops after an upgrade request
        except _HttpParserError as exc:
            self._complete = False
            raise _translate(exc, head) from None
        request = self._request
        if request is not None and head.count(b" ", 0, head.find(b"\r\n")) != 2:
            raise ProtocolError(400, "malformed request line (one space between its three parts)")
        if request is None:
            self._complete = False
            if head.startswith(b"PRI * HTTP/2"):  # llhttp waits for the rest of the preface
                raise ProtocolError(505, "HTTP/2 connection preface on an HTTP/1.1 port")
            raise ProtocolError(400, "incomplete request head")  # pragma: no cover
        return request

    # -- llhttp callbacks ----------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp drops the whitespace before a value, not the whitespace after it.
        # Names are lower-cased once, here: ASGI scopes want them so, WSGI keys ignore case.
        self._headers.append((name.lower(), value.rstrip(b" \t")))

    def on_headers_complete(self) -> None:
        parser = self._parser
        self._request = finish_head(
            parser.get_method().decode("ascii"),
            self._url,
            parser.get_http_version(),
            self._headers,
            self.limits,
        )

    def on_message_complete(self) -> None:
        # After a message that ends its connection llhttp refuses more data.
        self._complete = self._parser.should_keep_alive()
