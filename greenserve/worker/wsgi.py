"""The WSGI call for one request (PEP 3333): ``start_response``, ``write()``,
the response iterable, ``close()``, and ``wsgi.file_wrapper`` with sendfile.

Framing is decided when the first body bytes are known: the application's
Content-Length when it gives one (enforced: never more bytes than announced),
the exact length when it returns a list (so even HTTP/1.0 clients keep their
connection), otherwise chunked on HTTP/1.1 and close-delimited on HTTP/1.0.
A small response leaves in one ``sendall``.
"""

from __future__ import annotations

import io
import logging
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from greenserve.errors import ClientDisconnected, RequestBodyError
from greenserve.logs import request_summary
from greenserve.protocol.response import LAST_CHUNK, Head, ResponseError, chunk, has_body, serialize

if TYPE_CHECKING:
    from greenserve.protocol.events import Request
    from greenserve.worker.connection import Connection

log = logging.getLogger("greenserve.error")

#: Bodies up to this size are joined with their head into one sendall.
_JOIN_LIMIT = 256 * 1024
_SENDFILE_CHUNK = 1024 * 1024


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
    """Runs the application for one request and writes what it returns."""

    __slots__ = (
        "body_bytes",
        "chunked",
        "conn",
        "head",
        "headers_sent",
        "keep_alive",
        "remaining",
        "request",
        "send_body",
        "status",
        "upgraded",
    )

    def __init__(self, conn: Connection, request: Request, keep_alive: bool) -> None:
        self.conn = conn
        self.request = request
        self.keep_alive = keep_alive
        self.head: Head | None = None
        self.headers_sent = False
        self.chunked = False
        #: Body bytes still allowed by Content-Length (None: unbounded).
        self.remaining: int | None = None
        #: Body bytes written to the client (the access log's %(b)s).
        self.body_bytes = 0
        self.send_body = True
        #: The status code sent (0 until the head is out), for the access log.
        self.status = 0
        #: The connection was taken over by another protocol (see Connection.take_over).
        self.upgraded = False

    # -- the WSGI callables ----------------------------------------------------

    def start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: Any = None,
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.head is not None:
            raise AssertionError("start_response() called a second time without exc_info")
        self.head = Head(status, headers)
        return self.write

    def write(self, data: bytes) -> None:
        """The ``write()`` callable, and how the iterable's chunks are sent."""
        if not self.headers_sent:
            if self.head is None:
                raise AssertionError("write() or a body chunk before start_response()")
            self._send_head(data)
        elif data and self.send_body:
            self._send_body(data)

    # -- running the application ---------------------------------------------

    def run(self, app: Callable, environ: dict[str, Any]) -> None:
        """Call the app, send its response; errors become 500/400/413 or a close."""
        try:
            result = app(environ, self.start_response)
            try:
                if self.upgraded:
                    return
                if result.__class__ is list and not self.headers_sent:
                    self._send_list(result)
                elif isinstance(result, FileWrapper) and not self.headers_sent:
                    self._send_file(result)
                else:
                    self._send_iterable(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception as exc:  # noqa: BLE001 - the application's errors become a 500
            self._failed(exc)

    def run_asgi(self, bridge: Any, request: Request, body: Any) -> None:
        """Serve an ASGI application natively (see ASGIBridge.serve_request)."""
        try:
            bridge.serve_request(self.conn, request, body, self)
        except Exception as exc:  # noqa: BLE001 - the application's errors become a 500
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        """An exception escaped the application or its response: answer or close."""
        if isinstance(exc, ClientDisconnected):
            raise exc
        if isinstance(exc, RequestBodyError):
            self._fail(exc.status, None, f"request body: {exc.reason}")
        elif isinstance(exc, ResponseError):
            self._fail(500, None, f"invalid response from the application: {exc}")
        else:
            self._fail(500, exc, "error handling request")

    def timed_out(self) -> None:
        """``--request-timeout`` cancelled the request: 504 if nothing was sent yet."""
        self._fail(504, None, "request cancelled after --request-timeout")

    def _fail(self, status: int, exc: BaseException | None, message: str) -> None:
        request = self.request
        where = request_summary(request.method, request.target)  # escaped: client data
        if exc is not None:
            log.error("%s %s", message, where, exc_info=exc)
        elif status >= 500:
            log.error("%s (%s)", message, where)
        else:
            log.info("%s (%s)", message, where)
        self.keep_alive = False
        if self.headers_sent:
            return  # too late for an error page: the connection is closed instead
        self.head = None
        self.headers_sent = True
        self.status = status
        self.conn.send_error(status, "" if status >= 500 else message, self)

    def _send_list(self, result: list) -> None:
        head = self.head
        if head is None:
            raise ResponseError("the application returned without calling start_response()")
        try:
            body = result[0] if len(result) == 1 else b"".join(result)
        except TypeError:
            raise ResponseError("the response iterable must yield bytes") from None
        if body.__class__ is not bytes:
            if not isinstance(body, (bytearray, memoryview)):
                raise ResponseError(f"the response iterable yielded {type(body).__name__}, not bytes")
            body = bytes(body)
        length = head.content_length
        if length is None:
            if head.code not in {204, 304}:
                head.content_length = length = len(body)
        elif length != len(body):
            if len(body) > length:
                body = body[:length]
            else:
                log.warning(
                    "application sent %d bytes but Content-Length is %d; closing the connection",
                    len(body),
                    length,
                )
                self.keep_alive = False
        self._send_head(body)

    def _send_iterable(self, result: Iterable[bytes]) -> None:
        write = self.write
        for data in result:
            if data.__class__ is not bytes and not isinstance(data, (bytearray, memoryview)):
                raise ResponseError(f"the response iterable yielded {type(data).__name__}, not bytes")
            if data:
                write(data)
                if not self.send_body:
                    break  # HEAD, 204, 304: the head is out, the rest is not needed
        self.finish()

    def finish(self) -> None:
        """End of the body: last chunk, or check the announced length was met."""
        if not self.headers_sent:
            head = self.head
            if head is None:
                raise ResponseError("the application returned without calling start_response()")
            if head.content_length is None and head.code not in {204, 304}:
                head.content_length = 0
            self._send_head(b"")
        elif self.chunked:
            self.conn.sendall(LAST_CHUNK)
        elif self.remaining:
            log.warning(
                "application sent %d bytes, %d fewer than its Content-Length; closing the connection",
                self.body_bytes,
                self.remaining,
            )
            self.keep_alive = False

    # -- bytes on the wire --------------------------------------------------------

    def _send_head(self, data: bytes) -> None:
        head = self.head
        assert head is not None
        request = self.request
        conn = self.conn
        send_body = has_body(request.method, head.code)
        keep_alive = self.keep_alive and not head.close and not conn.server.stopping
        if request.expect_continue and conn.awaiting_continue:
            keep_alive = False  # the body was refused (no 100): announce the close
        length = head.content_length
        chunked = False
        if length is None and send_body:
            if request.version == "1.1":
                chunked = True
            else:
                keep_alive = False  # HTTP/1.0: the end of the body is the close
        self.keep_alive = keep_alive
        self.chunked = chunked
        self.send_body = send_body
        self.remaining = length if send_body else None
        self.headers_sent = True
        self.status = head.code
        out = serialize(
            head,
            conn.server.clock.date_line(),
            conn.server.server_line,
            length,
            chunked,
            keep_alive,
            request.version == "1.0",
        )
        if data and send_body:
            if len(data) <= _JOIN_LIMIT:
                conn.sendall(out + self._frame(data))
                return
            conn.sendall(out)
            self._send_body(data)
            return
        conn.sendall(out)

    def _frame(self, data: bytes) -> bytes:
        remaining = self.remaining
        if remaining is not None:
            if len(data) > remaining:
                data = data[:remaining]
                log.warning("application sent more than its Content-Length; the excess was dropped")
            self.remaining = remaining - len(data)
        self.body_bytes += len(data)
        return chunk(data) if self.chunked else data

    def _send_body(self, data: bytes) -> None:
        framed = self._frame(data)
        if framed:
            self.conn.sendall(framed)

    def _send_file(self, wrapper: FileWrapper) -> None:
        """Send a regular file with sendfile(2); anything else is iterated."""
        head = self.head
        if head is None:
            raise ResponseError("the application returned without calling start_response()")
        conn = self.conn
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
        count = min(size, head.content_length)
        if count < head.content_length:
            self.keep_alive = False
        self._send_head(b"")
        if not self.send_body or not count:
            return
        sent = conn.sendfile(fd, offset, count)
        self.body_bytes += sent
        self.remaining = (self.remaining or 0) - sent
        if sent < count:
            raise ClientDisconnected("file shorter than announced, or the client went away")
        if hasattr(filelike, "seek"):
            filelike.seek(offset + sent)
