"""The reference parser backend: h11 for the request head.

h11 validates the request line and field lines against RFC 9110/9112's
grammar. It is deliberately lenient in a few places that matter for request
smuggling behind a proxy, so this backend adds, before h11 sees the bytes:

- bare LF, bare CR and NUL anywhere in the head are rejected (h11 accepts
  LF-only line endings);
- obs-fold continuation lines are rejected (h11 unfolds them);

and frames the body itself (``Content-Length`` or the strict
:class:`~greenserve.protocol.chunked.ChunkedDecoder`), because h11 accepts
whitespace after a chunk size and bare CR in chunk extensions.

This is the only module that imports h11.
"""

from __future__ import annotations

from collections import deque

import h11

from greenserve.errors import ProtocolError
from greenserve.protocol.chunked import ChunkedDecoder
from greenserve.protocol.parser import END, Limits, Request
from greenserve.protocol.rules import finish_head

_HEAD, _LENGTH, _CHUNKED, _PAUSED, _DEAD = range(5)

#: Empty lines tolerated before a request line (RFC 9112 section 2.2).
_MAX_LEADING_CRLF = 8


def check_raw_head(data: bytes | bytearray, complete: bool) -> None:
    """Reject NUL, bare CR and bare LF in (part of) a request head.

    ``data`` never starts between a CR and its LF; when the head is not
    complete it may end with a CR whose LF has not arrived yet.
    """
    if b"\0" in data:
        raise ProtocolError(400, "NUL in request head")
    crlf = data.count(b"\r\n")
    if data.count(b"\n") != crlf:
        raise ProtocolError(400, "bare LF in request head")
    bare_cr = data.count(b"\r") - crlf
    if bare_cr and not (bare_cr == 1 and not complete and data.endswith(b"\r")):
        raise ProtocolError(400, "bare CR in request head")


class H11Parser:
    """Request parser over h11. See :class:`greenserve.protocol.parser.Parser`."""

    name = "h11"

    __slots__ = ("_buf", "_chunked", "_remaining", "_request", "_scanned", "_state", "events", "limits")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.events: deque = deque()
        self._buf = bytearray()
        self._state = _HEAD
        self._scanned = 0
        self._remaining = 0
        self._request: Request | None = None
        self._chunked: ChunkedDecoder | None = None

    # -- driving -----------------------------------------------------------

    def feed(self, data: bytes) -> None:
        state = self._state
        if state == _DEAD:
            return
        if state == _LENGTH and not self._buf:
            data = self._take_length(data)
            if not data:
                return
        self._buf += data
        if state == _PAUSED:
            if len(self._buf) > self.limits.head_size:
                self._fail(ProtocolError(400, "data after an upgrade request"))
            return
        try:
            self._run()
        except ProtocolError as error:
            self._fail(error)

    def feed_eof(self) -> None:
        state = self._state
        if (state == _HEAD and self._buf.strip(b"\r\n")) or state in (_LENGTH, _CHUNKED):
            self._fail(ProtocolError(400, "connection closed in the middle of a request"))

    def resume(self) -> None:
        if self._state == _PAUSED:
            self._state = _HEAD
            try:
                self._run()
            except ProtocolError as error:
                self._fail(error)

    def take_pending(self) -> bytes:
        pending = bytes(self._buf)
        self._buf.clear()
        self._state = _DEAD
        return pending

    def _fail(self, error: ProtocolError) -> None:
        self._state = _DEAD
        self._buf.clear()
        self.events.append(error)

    # -- state machine -------------------------------------------------------

    def _run(self) -> None:
        buf = self._buf
        while buf:
            state = self._state
            if state == _HEAD:
                if not self._head():
                    return
            elif state == _LENGTH:
                size = min(self._remaining, len(buf))
                self.events.append(bytes(buf[:size]))
                del buf[:size]
                self._remaining -= size
                if not self._remaining:
                    self._end_message()
            elif state == _CHUNKED:
                assert self._chunked is not None
                if not self._chunked.decode(buf, self.events.append):
                    return
                self._end_message()
            else:  # paused after an upgrade request
                return

    def _take_length(self, data: bytes) -> bytes:
        """Fast path for a Content-Length body: no copy through the buffer."""
        size = self._remaining
        if len(data) <= size:
            self.events.append(data)
            self._remaining -= len(data)
            if not self._remaining:
                self._end_message()
            return b""
        self.events.append(data[:size])
        self._remaining = 0
        self._end_message()
        return data[size:]

    def _head(self) -> bool:
        buf = self._buf
        limits = self.limits
        skipped = 0
        while buf[:2] == b"\r\n" and skipped < _MAX_LEADING_CRLF:
            del buf[:2]
            skipped += 1
            self._scanned = 0
        if not buf:
            return False
        start = self._scanned
        end = buf.find(b"\r\n\r\n", max(0, start - 3))
        if end < 0:
            check_raw_head(buf[start:], complete=False)
            self._scanned = len(buf) - 1 if buf.endswith(b"\r") else len(buf)
            if buf.find(b"\r\n") < 0 and len(buf) > limits.request_line:
                raise ProtocolError(414, "request line too long")
            if len(buf) > limits.head_size:
                raise ProtocolError(431, "request head too large")
            return False
        head = bytes(buf[: end + 4])
        del buf[: end + 4]
        self._scanned = 0
        check_raw_head(head[start:], complete=True)
        if b"\n " in head or b"\n\t" in head:
            raise ProtocolError(400, "obsolete line folding in request head")
        if len(head) > limits.head_size:
            raise ProtocolError(431, "request head too large")
        self._start_message(self._parse_head(head))
        return True

    def _parse_head(self, head: bytes) -> Request:
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=len(head) + 1)
        try:
            connection.receive_data(head)
            event = connection.next_event()
        except h11.RemoteProtocolError as exc:
            status = 431 if exc.error_status_hint == 431 else 400
            raise ProtocolError(status, str(exc)) from None
        if not isinstance(event, h11.Request):  # pragma: no cover - a full head always parses
            raise ProtocolError(400, "incomplete request head")
        # h11 merges repeated Content-Length fields and list forms ("5, 5") into
        # one value; the rules must see the fields exactly as sent. h11 has
        # validated every line, so splitting the raw head is safe.
        lines = head[:-4].split(b"\r\n")
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.append((name, value.strip(b" \t")))
        return finish_head(
            event.method.decode("ascii"),
            event.target,
            event.http_version.decode("ascii"),
            headers,
            self.limits,
        )

    def _start_message(self, request: Request) -> None:
        self.events.append(request)
        self._request = request
        if request.chunked:
            self._chunked = ChunkedDecoder(self.limits)
            self._state = _CHUNKED
        elif request.content_length:
            self._remaining = request.content_length
            self._state = _LENGTH
        else:
            self._end_message()

    def _end_message(self) -> None:
        self.events.append(END)
        request = self._request
        self._request = None
        self._chunked = None
        self._state = _PAUSED if request is not None and request.upgrade is not None else _HEAD
