"""The fast head parser: llhttp (through httptools), in its strict mode.

llhttp rejects bare CR/LF, NUL and control characters, obs-fold, spaces
before the colon and malformed lengths by itself; what it leaves open
(HTTP/1.1 without Host, HTTP/1.0 with Transfer-Encoding, transfer codings,
methods, target forms, limits) is decided by
:func:`~greenserve.protocol.rules.finish_head`, exactly as for h11.

llhttp also refuses some heads that are valid, or that the rules answer
otherwise: methods outside its fixed list (``BASELINE-CONTROL``, or ``FOO``
which deserves 501, not 400), versions it does not know (``HTTP/1.2`` is
processed as HTTP/1.1), a tab after ``chunked``. So every head llhttp
refuses is handed to the reference parser (h11), and its answer is the
answer: refused heads are rare, and the two backends then agree by
construction. A head that llhttp accepts goes straight to the rules.

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

from typing import TYPE_CHECKING

import httptools

from greenserve.errors import ProtocolError
from greenserve.protocol.events import Limits, Request
from greenserve.protocol.rules import finish_head

if TYPE_CHECKING:
    from greenserve.protocol.h11_backend import H11HeadParser

_HttpParserError = httptools.HttpParserError
_HttpParserCallbackError = httptools.HttpParserCallbackError
_HttpParserUpgrade = httptools.HttpParserUpgrade
_VERSIONS = {b"1.1": "1.1", b"1.0": "1.0"}


class HttptoolsHeadParser:
    """See :class:`greenserve.protocol.parser.HeadParser`."""

    name = "httptools"

    __slots__ = ("_complete", "_head", "_headers", "_parser", "_reference", "_request", "_url", "limits")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._parser = httptools.HttpRequestParser(self)
        self._head = b""
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._request: Request | None = None
        self._complete = True
        #: The h11 parser that answers for the heads llhttp refuses (made on first use).
        self._reference: H11HeadParser | None = None

    def parse(self, head: bytes) -> Request:
        if not self._complete:
            self._parser = httptools.HttpRequestParser(self)
        self._complete = False
        self._request = None
        self._head = head
        self._url = b""
        self._headers = []
        try:
            self._parser.feed_data(head)
        except _HttpParserUpgrade:
            self._complete = False  # llhttp stops after an upgrade request (a fresh one next time)
        except _HttpParserCallbackError as exc:
            cause = exc.__context__  # what finish_head raised
            if isinstance(cause, ProtocolError):
                raise cause from None
            raise ProtocolError(400, f"invalid request ({cause!r})") from None  # pragma: no cover
        except _HttpParserError:
            return self._refer(head)
        request = self._request
        if request is None:
            # on_headers_complete declined the request line, or llhttp waits
            # for more (after "PRI * HTTP/2.0", the rest of the HTTP/2 preface).
            return self._refer(head)
        return request

    def _refer(self, head: bytes) -> Request:
        """The reference parser's answer for a head llhttp refused or left unfinished."""
        self._complete = False  # llhttp's state is unknown: a fresh parser next time
        reference = self._reference
        if reference is None:
            from greenserve.protocol.h11_backend import H11HeadParser

            reference = self._reference = H11HeadParser(self.limits)
        return reference.parse(head)

    # -- llhttp callbacks ----------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp drops the whitespace before a value, not the whitespace after it.
        # Names are lower-cased once, here: ASGI scopes want them so, WSGI keys ignore case.
        self._headers.append((name.lower(), value.rstrip(b" \t")))

    def on_headers_complete(self) -> None:
        head = self._head
        eol = head.find(b"\r\n")
        if head.count(b" ", 0, eol) != 2:
            # llhttp tolerates runs of spaces in the request line; RFC 9112 3
            # has exactly one between the three parts. Left to the reference.
            return
        parser = self._parser
        # The line llhttp accepted ends with "HTTP/d.d": its last three bytes are the version.
        # get_http_version() formats two ints into a new str: 174 ns, this lookup 87 ns
        # (timeit; a hello request takes 13 us).
        version = _VERSIONS.get(head[eol - 3 : eol]) or parser.get_http_version()
        self._request = finish_head(
            parser.get_method().decode("ascii"),
            self._url,
            version,
            self._headers,
            self.limits,
        )

    def on_message_complete(self) -> None:
        # After a message that ends its connection llhttp refuses more data.
        self._complete = self._parser.should_keep_alive()
