"""The WSGI call for one request (PEP 3333): ``start_response``, ``write()``,
the response iterable, ``close()``, and ``wsgi.file_wrapper`` with sendfile.

This module only speaks WSGI: what the application returns becomes response
events for the connection's :class:`~greenserve.protocol.exchange.Exchange`,
which frames them (Content-Length, chunked, close-delimited, no body for
HEAD/204/304) and decides keep-alive. A response returned as a list leaves
with its head in one ``sendall``, with its exact length.
"""

from __future__ import annotations

import io
import logging
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from greenserve.errors import ClientDisconnected
from greenserve.protocol.exchange import RECEIVING, SWITCHED
from greenserve.protocol.response import Head, ResponseError

if TYPE_CHECKING:
    from greenserve.protocol.exchange import Exchange
    from greenserve.worker.connection import Connection

log = logging.getLogger("greenserve.error")

#: Bodies up to this size are joined with their head into one sendall.
_JOIN_LIMIT = 256 * 1024


class FileWrapper:
    """``wsgi.file_wrapper``: a file to stream, sent with ``os.sendfile`` when possible."""

    __slots__ = ("blksize", "filelike")

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        blksize = self.blksize
        while data := read(blksize):
            yield data

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


class WSGIResponse:
    """Runs the application for one request and hands what it returns to the exchange."""

    __slots__ = ("conn", "exchange", "head")

    def __init__(self, conn: Connection, exchange: Exchange) -> None:
        self.conn = conn
        self.exchange = exchange
        #: The head given to start_response, until it is sent.
        self.head: Head | None = None

    # -- the WSGI callables ----------------------------------------------------

    def start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: Any = None,
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.exchange.state != RECEIVING:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.head is not None:
            raise AssertionError("start_response() called a second time without exc_info")
        self.head = Head(status, headers)
        return self.write

    def write(self, data: bytes) -> None:
        """The ``write()`` callable, and how the iterable's chunks are sent."""
        exchange = self.exchange
        if exchange.state == RECEIVING:
            head = self.head
            if head is None:
                raise AssertionError("write() or a body chunk before start_response()")
            if len(data) <= _JOIN_LIMIT:
                self.conn.sendall(exchange.send_head(head, data))
                return
            self.conn.sendall(exchange.send_head(head))
        out = exchange.send_data(data)
        if out:
            self.conn.sendall(out)

    # -- running the application ---------------------------------------------

    def run(self, app: Callable, environ: dict[str, Any]) -> None:
        """Call the app and send its response; errors propagate to the connection."""
        result = app(environ, self.start_response)
        try:
            state = self.exchange.state
            if state == RECEIVING:  # nothing written yet: the body may go out with the head
                if isinstance(result, list):
                    self._send_list(result)
                elif isinstance(result, FileWrapper):
                    self._send_file(result)
                else:
                    self._send_iterable(result)
            elif state != SWITCHED:  # (SWITCHED: the application took the connection over)
                self._send_iterable(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    def _started_head(self) -> Head:
        head = self.head
        if head is None:
            raise ResponseError("the application returned without calling start_response()")
        return head

    def _send_list(self, result: list) -> None:
        head = self.head
        if head is None:
            raise ResponseError("the application returned without calling start_response()")
        try:
            body = result[0] if len(result) == 1 else b"".join(result)
        except TypeError:
            raise ResponseError("the response iterable must yield bytes") from None
        if not isinstance(body, bytes):
            if not isinstance(body, (bytearray, memoryview)):
                raise ResponseError(f"the response iterable yielded {type(body).__name__}, not bytes")
            body = bytes(body)
        exchange = self.exchange
        self.conn.sendall(exchange.send_head(head, body, end=True))
        if exchange.excess or exchange.remaining:
            self._check_length()

    def _send_iterable(self, result: Iterable[bytes]) -> None:
        write = self.write
        exchange = self.exchange
        for data in result:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise ResponseError(f"the response iterable yielded {type(data).__name__}, not bytes")
            if data:
                write(data)
                if not exchange.send_body:
                    break  # HEAD, 204, 304: the head is out, the rest is not needed
        self.finish()

    def finish(self) -> None:
        """The end of the body (the head too, if nothing was written)."""
        exchange = self.exchange
        if exchange.state == RECEIVING:
            out = exchange.send_head(self._started_head(), b"", end=True)
        else:
            out = exchange.send_end()
        if out:
            self.conn.sendall(out)
        if exchange.excess or exchange.remaining:
            self._check_length()

    def _check_length(self) -> None:
        """Say once when the body did not match the application's Content-Length."""
        exchange = self.exchange
        if exchange.excess:
            log.warning(
                "application sent %d bytes more than its Content-Length; the excess was dropped",
                exchange.excess,
            )
        elif exchange.remaining:
            log.warning(
                "application sent %d bytes, %d fewer than its Content-Length; closing the connection",
                exchange.body_bytes,
                exchange.remaining,
            )

    def _send_file(self, wrapper: FileWrapper) -> None:
        """Send a regular file with sendfile(2); anything else is iterated."""
        head = self._started_head()
        conn = self.conn
        exchange = self.exchange
        filelike = wrapper.filelike
        try:
            fd = filelike.fileno()
            info = os.fstat(fd)
            offset = filelike.tell() if hasattr(filelike, "tell") else 0
        except (AttributeError, OSError, io.UnsupportedOperation):
            fd = -1
        if fd < 0 or not stat.S_ISREG(info.st_mode) or not conn.can_sendfile:
            self._send_iterable(wrapper)
            return
        if hasattr(filelike, "flush"):
            filelike.flush()
        size = max(0, info.st_size - offset)
        if head.content_length is None:
            head.content_length = size
        conn.sendall(exchange.send_head(head))
        count = min(size, exchange.remaining or 0) if exchange.send_body else 0
        if count:
            sent = conn.sendfile(fd, offset, count)
            exchange.sent_directly(sent)
            if sent < count:
                raise ClientDisconnected("file shorter than announced, or the client went away")
            if hasattr(filelike, "seek"):
                filelike.seek(offset + sent)
        self.finish()
