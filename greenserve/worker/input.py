"""``wsgi.input``: the request body, streamed from the socket as the app reads.

The body is never read ahead of the application (beyond one socket read),
so memory stays bounded whatever the client sends. ``Expect: 100-continue``
is answered on the first read, not before: an application that rejects a
large upload with 401 or 413 without reading it never asks the client to
send it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from greenserve.errors import RequestBodyError
from greenserve.protocol.events import END

if TYPE_CHECKING:
    from greenserve.protocol.exchange import Exchange
    from greenserve.worker.connection import Connection


class Input:
    """The body of one request. Reads return ``b""`` at its end (input_terminated)."""

    __slots__ = ("_buf", "_conn", "_continue", "done", "received")

    def __init__(self, conn: Connection, exchange: Exchange) -> None:
        self._conn = conn
        self._buf = b""
        #: Ask the exchange for ``100 Continue`` on the first read (it knows whether it is due).
        self._continue = exchange.continue_pending
        #: The whole body has been received (or the body failed).
        self.done = False
        #: Body bytes received so far (for metrics).
        self.received = 0

    def _piece(self) -> bytes:
        """The next piece of body from the parser; ``b""`` at the end."""
        if self.done:
            return b""
        conn = self._conn
        if self._continue:
            self._continue = False
            conn.send_continue()
        events = conn.events
        while not events:
            conn.receive_body()
        event = events.popleft()
        if isinstance(event, bytes):
            self.received += len(event)
            return event
        self.done = True
        if event is END:
            return b""
        conn.body_error = event
        raise RequestBodyError(event.status, event.reason)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = [self._buf]
            while piece := self._piece():
                parts.append(piece)
            self._buf = b""
            return b"".join(parts)
        buf = self._buf
        if len(buf) < size and not self.done:
            parts = [buf]
            have = len(buf)
            while have < size and (piece := self._piece()):
                parts.append(piece)
                have += len(piece)
            buf = b"".join(parts)
        self._buf = buf[size:]
        return buf[:size]

    def read1(self, size: int | None = -1) -> bytes:
        """Whatever the next socket read brought (at most ``size`` bytes), without waiting for more.

        For streaming consumers (the ASGI bridge): each call returns as soon as
        a piece of the body is there. ``done`` is already true after the last piece.
        """
        buf = self._buf
        if not buf:
            buf = self._piece()
        if size is not None and 0 <= size < len(buf):
            self._buf = buf[size:]
            buf = buf[:size]
        else:
            self._buf = b""
        if not self._buf and not self.done:
            events = self._conn.events
            if events and events[0] is END:
                events.popleft()
                self.done = True
        return buf

    def readline(self, size: int | None = -1) -> bytes:
        limit = size if size is not None and size >= 0 else None
        buf = self._buf
        start = 0
        while True:
            newline = buf.find(b"\n", start)
            if newline >= 0:
                end = newline + 1
                break
            if limit is not None and len(buf) >= limit:
                end = limit
                break
            start = len(buf)
            piece = self._piece()
            if not piece:
                end = len(buf)
                break
            buf += piece
        if limit is not None:
            end = min(end, limit)
        self._buf = buf[end:]
        return buf[:end]

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def drain(self, limit: int) -> bool:
        """Discard up to ``limit`` unread bytes; ``True`` if the body is then complete."""
        discarded = len(self._buf)
        self._buf = b""
        while not self.done and discarded <= limit:
            discarded += len(self._piece())
        return self.done


class EmptyInput:
    """``wsgi.input`` for requests without a body: stateless, shared by all of them."""

    __slots__ = ()

    done = True
    received = 0

    def read(self, size: int | None = -1) -> bytes:
        return b""

    def read1(self, size: int | None = -1) -> bytes:
        return b""

    def readline(self, size: int | None = -1) -> bytes:
        return b""

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return []

    def __iter__(self) -> Iterator[bytes]:
        return iter(())

    def drain(self, limit: int) -> bool:
        return True


EMPTY_INPUT = EmptyInput()
