"""The response half of HTTP/1.1, sans-IO: response events in, bytes out.

:class:`Exchange` is the server's side of one connection, in the spirit of
h11's ``Connection``. The worker tells it about each request (its head, and
at the end whether its body was read) and what the application sends (a
response head, body pieces, the end); it returns the bytes to write. Every
decision about framing and about the connection's future is made here, once,
for WSGI and ASGI alike:

- the body's framing: the application's ``Content-Length`` (enforced: never
  more bytes than announced, and a shorter body closes the connection), the
  exact length when the whole body is given with the head, otherwise chunked
  on HTTP/1.1 and close-delimited on HTTP/1.0;
- no body for HEAD, 204 and 304, and no ``Content-Length`` on a 204;
- ``Connection: close`` when the client, the application or the server (keep-alive
  off, or draining for a shutdown) wants it, and ``Connection: keep-alive`` for an
  HTTP/1.0 client that asked for it;
- ``Expect: 100-continue``: the 100 goes out at most once, and only before the
  final response; a body the client was never asked for closes the connection;
- after the response: keep the connection, drain an unread request body first,
  or close (lingering when the client may still be sending).

The connection's states, from the server's side::

    IDLE --start()--> RECEIVING --send_head()--> RESPONDING --send_end()--> DONE
                        |    |                                                |
                        |    +--send_error()------------------------------> DONE
                        +--switch()--> SWITCHED (another protocol owns it)    |
                                                                       finish()
                                                 keep-alive: IDLE  <----------+----> MUST_CLOSE

Nothing here touches a socket or a clock: the date line comes from a
callable the worker passes in, so every rule is tested on bytes.
"""

from __future__ import annotations

from collections.abc import Callable

from greenserve.protocol.events import Request
from greenserve.protocol.response import (
    CONTINUE,
    LAST_CHUNK,
    Head,
    chunk,
    error_response,
    serialize,
)

# -- states ------------------------------------------------------------------------------
#: Waiting for the first byte of a request head.
IDLE = 0
#: A request head arrived; its response has not started (its body may still be arriving).
RECEIVING = 1
#: The response head is out; body pieces follow.
RESPONDING = 2
#: The response is complete; the request body may still be unread (see :meth:`Exchange.finish`).
DONE = 3
#: The connection ends once the bytes already returned are written.
MUST_CLOSE = 4
#: Handed over to another protocol (a WebSocket after ``101``): nothing more is HTTP/1.1.
SWITCHED = 5

STATE_NAMES = ("idle", "receiving", "responding", "done", "must-close", "switched")

# -- what to do after a response (Exchange.finish) -----------------------------------------
#: Keep the connection: the next request may follow.
KEEP_ALIVE = 0
#: Close now.
CLOSE = 1
#: Close, but read what the client is still sending for a moment first, so it reads the response.
CLOSE_LINGER = 2
#: Read and discard the rest of the request body, then ask :meth:`Exchange.drained`.
DRAIN = 3

# -- Expect: 100-continue ----------------------------------------------------------------
_NO_CONTINUE = 0  # not asked for
_CONTINUE_PENDING = 1  # the client waits for "100 Continue" before sending its body
_CONTINUE_SENT = 2
_CONTINUE_SKIPPED = 3  # the final response started first: the client may never send the body


class ExchangeError(RuntimeError):
    """The worker drove the exchange out of order (a bug, never the client's doing)."""


class ExchangeSettings:
    """What an exchange needs from the server; one instance shared by a worker's connections.

    ``draining`` is flipped by the worker when it stops: responses that start
    afterwards say ``Connection: close``.
    """

    __slots__ = ("date_line", "draining", "id_field", "keep_alive", "server_line")

    def __init__(
        self,
        date_line: Callable[[], bytes],
        server_line: bytes = b"",
        keep_alive: bool = True,
        id_header: bytes = b"",
    ) -> None:
        #: Returns the current ``Date: ...\r\n`` line (the worker caches it per second).
        self.date_line = date_line
        #: The ``Server: ...\r\n`` line, or ``b""`` for none.
        self.server_line = server_line
        #: Whether the server keeps connections open between requests at all.
        self.keep_alive = keep_alive
        self.draining = False
        #: ``b"\r\nx-request-id:"`` for ``--request-id-response``: how an application's own
        #: request-id header starts in a head's block (then the server adds none).
        self.id_field = b"\r\n" + id_header.lower() + b":" if id_header else b""


class Exchange:
    """The server side of one HTTP/1.1 connection's request/response cycles."""

    __slots__ = (
        "_continue",
        "body_bytes",
        "chunked",
        "close_reason",
        "excess",
        "head",
        "id_line",
        "keep_alive",
        "remaining",
        "request",
        "send_body",
        "settings",
        "state",
        "status",
    )

    def __init__(self, settings: ExchangeSettings) -> None:
        self.settings = settings
        self.state = IDLE
        self.request: Request | None = None
        #: The response head sent (None until then, and for server-made error responses).
        self.head: Head | None = None
        #: The status code sent (0 until a response started), for logs and metrics.
        self.status = 0
        #: Body bytes sent, framing excluded (the access log's ``%(b)s``).
        self.body_bytes = 0
        #: Body bytes the application sent beyond its Content-Length (dropped).
        self.excess = 0
        #: Whether the connection can carry another request after this one.
        self.keep_alive = False
        #: Why it cannot (for logs and tests); "" while it can.
        self.close_reason = ""
        self.chunked = False
        self.send_body = True
        #: Body bytes still allowed by Content-Length (None: not counted).
        self.remaining: int | None = None
        self._continue = _NO_CONTINUE
        #: The request-id header line (``--request-id-response``) for the current request's
        #: responses, set by the worker after :meth:`start`; b"" for none.
        self.id_line = b""

    def __repr__(self) -> str:
        return f"<Exchange {STATE_NAMES[self.state]} {self.request!r}>"

    # -- the request side ----------------------------------------------------------------

    def start(self, request: Request) -> None:
        """A request head arrived: IDLE -> RECEIVING."""
        if self.state != IDLE:
            raise ExchangeError(f"start() in state {STATE_NAMES[self.state]}")
        self.state = RECEIVING
        self.request = request
        self.head = None
        self.status = self.body_bytes = self.excess = 0
        # (chunked, send_body and remaining are set by send_head, before anything reads them.)
        if request.keep_alive and self.settings.keep_alive:
            self.keep_alive = True
            self.close_reason = ""
        else:
            self.keep_alive = False
            self.close_reason = "keep-alive is off" if request.keep_alive else "the client asked to close"
        self._continue = _CONTINUE_PENDING if request.expect_continue else _NO_CONTINUE

    @property
    def continue_pending(self) -> bool:
        """The client sent ``Expect: 100-continue`` and still waits for the 100."""
        return self._continue == _CONTINUE_PENDING

    def send_continue(self) -> bytes:
        """``100 Continue`` when the client waits for it and no response has started; else b""."""
        if self._continue == _CONTINUE_PENDING and self.state == RECEIVING:
            self._continue = _CONTINUE_SENT
            return CONTINUE
        return b""

    # -- the response --------------------------------------------------------------------

    def send_head(self, head: Head, body: bytes = b"", end: bool = False) -> bytes:
        """The response head, with ``body`` framed after it and the end when ``end``.

        RECEIVING -> RESPONDING (-> DONE with ``end``). When ``end`` is true the
        whole body is ``body``, so its exact length is announced if the
        application gave none: even an HTTP/1.0 client keeps its connection.
        """
        if self.state != RECEIVING:
            raise ExchangeError(f"send_head() in state {STATE_NAMES[self.state]}")
        request = self.request
        assert request is not None
        code = head.code
        send_body = code not in (204, 304) and request.method != "HEAD"
        length = head.content_length
        if code == 204:
            length = None  # RFC 9110 8.6: never a Content-Length on a 204
        elif end and length is None and code != 304:
            length = len(body)  # the whole body is known
        if self.keep_alive:
            if head.close:
                self._must_close("the application asked to close")
            elif self.settings.draining:
                self._must_close("the server is stopping")
        if self._continue == _CONTINUE_PENDING:
            self._continue = _CONTINUE_SKIPPED
            self._must_close("the body was refused (no 100 Continue)")
        chunked = False
        if length is None and send_body:
            if request.version == "1.1":
                chunked = True
            elif self.keep_alive:
                self._must_close("the body ends with the connection (HTTP/1.0, no length)")
        self.state = RESPONDING
        self.head = head
        self.status = code
        self.chunked = chunked
        self.send_body = send_body
        self.remaining = length if send_body else None
        settings = self.settings
        id_line = self.id_line
        if id_line and (b"\r\n" + head.block.lower()).find(settings.id_field) >= 0:
            id_line = b""  # the application sent its own
        out = serialize(
            head,
            settings.date_line(),
            settings.server_line,
            length,
            chunked,
            self.keep_alive,
            request.version == "1.0",
            id_line,
        )
        if body and send_body:
            out += self._frame(body)
        if end:  # send_end(), inline: a whole body with its head is the usual WSGI response
            self.state = DONE
            if chunked:
                out += LAST_CHUNK
            elif self.remaining:
                self._must_close("the body was shorter than its Content-Length")
        return out

    def send_data(self, data: bytes) -> bytes:
        """A piece of the response body, framed; b"" when there is nothing to send."""
        if self.state != RESPONDING:
            raise ExchangeError(f"send_data() in state {STATE_NAMES[self.state]}")
        if not data or not self.send_body:
            return b""
        return self._frame(data)

    def _frame(self, data: bytes) -> bytes:
        remaining = self.remaining
        if remaining is not None:
            if len(data) > remaining:
                self.excess += len(data) - remaining
                data = data[:remaining]
            self.remaining = remaining - len(data)
        self.body_bytes += len(data)
        return chunk(data) if self.chunked and data else data

    def sent_directly(self, count: int) -> None:
        """``count`` body bytes went out without framing (sendfile): account for them."""
        if self.state != RESPONDING or self.chunked:
            raise ExchangeError("body bytes can only bypass the framing of a counted, unchunked body")
        self.body_bytes += count
        if self.remaining is not None:
            self.remaining -= count

    def send_end(self) -> bytes:
        """The end of the response body: RESPONDING -> DONE."""
        if self.state != RESPONDING:
            raise ExchangeError(f"send_end() in state {STATE_NAMES[self.state]}")
        self.state = DONE
        if self.chunked:
            return LAST_CHUNK
        if self.remaining:
            self._must_close("the body was shorter than its Content-Length")
        return b""

    def send_error(self, status: int, detail: str = "") -> bytes:
        """A response the server makes itself (400, 408, 500, 504...), then the connection closes.

        Before any response started, the error response's bytes; once a head is
        out it is too late for another: b"", and the connection closes, which
        tells the client the response is incomplete.
        """
        state = self.state
        if state in (SWITCHED, MUST_CLOSE):
            raise ExchangeError(f"send_error() in state {STATE_NAMES[state]}")
        self._must_close(f"error {status}")
        if state in (RESPONDING, DONE):
            self.state = DONE
            return b""
        self.state = DONE
        self.head = None
        self.status = status
        if self._continue == _CONTINUE_PENDING:
            self._continue = _CONTINUE_SKIPPED
        settings = self.settings
        # The request's id when there is a request (a head that could not be parsed has none).
        extra = self.id_line if state == RECEIVING else b""
        data = error_response(status, settings.date_line(), settings.server_line + extra, detail)
        self.body_bytes = len(data) - data.index(b"\r\n\r\n") - 4
        return data

    def abort(self, reason: str) -> None:
        """The response cannot be completed (the application failed after its head): close."""
        self._must_close(reason)
        if self.state == RESPONDING:
            self.state = DONE

    def switch(self) -> None:
        """Another protocol takes the connection over (after an ``Upgrade``): RECEIVING -> SWITCHED."""
        if self.state != RECEIVING:
            raise ExchangeError(f"switch() in state {STATE_NAMES[self.state]}")
        self.state = SWITCHED
        self.status = 101
        self._must_close("switched protocols")

    def _must_close(self, reason: str) -> None:
        if self.keep_alive:
            self.keep_alive = False
            self.close_reason = reason

    # -- after the response --------------------------------------------------------------

    def finish(self, body_complete: bool, body_failed: bool = False) -> int:
        """The application is done with the request: what happens to the connection.

        ``body_complete``: the request body has been received to its end (or
        there was none). ``body_failed``: the body broke the protocol or a
        limit. Returns :data:`KEEP_ALIVE`, :data:`CLOSE`, :data:`CLOSE_LINGER`
        or :data:`DRAIN` (then call :meth:`drained`).
        """
        state = self.state
        if state == SWITCHED:
            return CLOSE
        if state != DONE:
            raise ExchangeError(f"finish() in state {STATE_NAMES[state]}")
        if body_failed:
            self._must_close("the request body was invalid")
            return self._close(CLOSE_LINGER)
        if not body_complete:
            if self._continue == _CONTINUE_SKIPPED:
                # The client was never asked for its body: it may never send it.
                self._must_close("the body was refused (no 100 Continue)")
                return self._close(CLOSE)
            if not self.keep_alive:
                return self._close(CLOSE_LINGER)
            return DRAIN
        if self.keep_alive:
            self.state = IDLE
            return KEEP_ALIVE
        return self._close(CLOSE)

    def drained(self, complete: bool) -> int:
        """After :data:`DRAIN`: whether the unread body could be read to its end."""
        if complete and self.keep_alive:
            self.state = IDLE
            return KEEP_ALIVE
        self._must_close("the unread request body was too large to discard")
        return self._close(CLOSE_LINGER)

    def _close(self, how: int) -> int:
        self.state = MUST_CLOSE
        return how


__all__ = [
    "CLOSE",
    "CLOSE_LINGER",
    "DONE",
    "DRAIN",
    "IDLE",
    "KEEP_ALIVE",
    "MUST_CLOSE",
    "RECEIVING",
    "RESPONDING",
    "SWITCHED",
    "Exchange",
    "ExchangeError",
    "ExchangeSettings",
]
