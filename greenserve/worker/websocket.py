"""WebSockets on a greenserve connection: for WSGI applications, and the transport ASGI uses too.

After an ``Upgrade: websocket`` request the connection is handed over
(:meth:`Connection.take_over`) to one of:

- a :class:`WebSocketTransport`, greenserve's own WebSocket (wsproto frames):
  a reader greenlet that answers pings and queues messages (a bounded queue:
  it stops reading while the application has not taken them), a pinger that
  closes connections whose peer stopped answering, ``--ws-max-size`` (1009),
  per-message deflate with bounded inflation, the close handshake (a
  connection that fails, with 1002, 1007, 1009 or 1011, closes at once), and
  1001 when the worker stops. WSGI applications see it as ``environ["wsgi.websocket"]``
  (:class:`WSGIWebSocket`, gevent-websocket's API: Flask-SocketIO, engineio and
  gevent-websocket handlers run unchanged); the ASGI bridge drives the same
  transport;
- or the application itself, through ``environ["gunicorn.socket"]``
  (:class:`TakeoverSocket`): libraries that speak WebSocket themselves
  (simple-websocket, hence Flask-Sock and engineio's fallback) take the raw
  socket, as they do on gunicorn.

Either way the connection stays in the worker's pool (``--worker-connections``)
and in its graceful shutdown, ``--request-timeout`` no longer applies to it,
and greenserve closes the socket when the application returns.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import Event
from gevent.lock import Semaphore
from wsproto import ConnectionState, ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.extensions import Extension
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from greenserve.errors import ClientDisconnected
from greenserve.protocol.events import Request as HTTPRequest
from greenserve.protocol.websocket import (
    ABNORMAL,
    GOING_AWAY,
    INTERNAL_ERROR,
    MESSAGE_TOO_BIG,
    NORMAL,
    PROTOCOL_ERROR,
    BoundedDeflate,
    HandshakeError,
    handshake_request,
)

if TYPE_CHECKING:
    from greenserve.worker.connection import Connection

log = logging.getLogger("greenserve.error")

_RECV = 64 * 1024
#: Messages received and not yet taken by the application before reading pauses.
QUEUE_LIMIT = 16
#: After sending a close frame, how long to wait for the peer's before closing the socket.
CLOSE_TIMEOUT = 2.0
#: Whole, unfragmented, masked text and binary frames up to this size are decoded by greenserve
#: itself; every other frame goes to wsproto, whole (see WebSocketTransport._read).
FAST_FRAME_LIMIT = 64 * 1024
_FAST_FIRST_BYTES = frozenset((0x81, 0x82))


def _unmask(payload: bytes, mask: bytes) -> bytes:
    """RFC 6455 5.3: XOR with the 4-byte key, as one big-integer operation."""
    size = len(payload)
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(size, "little")


def _server_frame(first_byte: int, payload: bytes) -> bytes:
    """One final, unmasked frame (a server's): ``first_byte`` is FIN and the opcode."""
    size = len(payload)
    if size < 126:
        return bytes((first_byte, size)) + payload
    if size < 1 << 16:
        return bytes((first_byte, 126)) + size.to_bytes(2, "big") + payload
    return bytes((first_byte, 127)) + size.to_bytes(8, "big") + payload


class WebSocketSettings:
    """What a worker's WebSockets get from the configuration (one instance per worker)."""

    __slots__ = ("max_size", "per_message_deflate", "ping_interval", "ping_timeout", "send_timeout")

    def __init__(
        self,
        max_size: int = 16 * 1024 * 1024,
        ping_interval: float = 20.0,
        ping_timeout: float = 20.0,
        per_message_deflate: bool = True,
        send_timeout: float = 60.0,
    ) -> None:
        #: Largest message accepted (0: unbounded); a bigger one closes with 1009.
        self.max_size = max_size
        #: Ping after this long without traffic (0: never).
        self.ping_interval = ping_interval
        #: Close with 1011 when a ping is not answered within this long (0: wait forever).
        self.ping_timeout = ping_timeout
        self.per_message_deflate = per_message_deflate
        #: A send that cannot finish within this long (the peer stopped reading) fails.
        self.send_timeout = send_timeout


def is_websocket_request(request: HTTPRequest) -> bool:
    return request.upgrade is not None and request.upgrade.lower() == b"websocket" and request.method == "GET"


class WebSocketHandshake:
    """An upgrade request, validated, not yet answered: accept it, or answer with plain HTTP."""

    def __init__(self, conn: Connection, request: HTTPRequest) -> None:
        self.conn = conn
        self.ws = WSConnection(ConnectionType.SERVER)
        try:
            self.ws.receive_data(handshake_request(request))
            event = next(self.ws.events())
        except RemoteProtocolError as exc:
            raise HandshakeError.from_wsproto(exc) from None
        except StopIteration:
            raise HandshakeError("not a WebSocket handshake") from None
        if not isinstance(event, Request):  # pragma: no cover - wsproto yields a Request first
            raise HandshakeError("not a WebSocket handshake")
        #: The subprotocols the client offered, in its order of preference.
        self.subprotocols: list[str] = list(event.subprotocols)
        self.extensions = list(event.extensions)

    def accept(
        self, subprotocol: str | None = None, extra_headers: list[tuple[bytes, bytes]] | None = None
    ) -> WebSocketTransport:
        """Send ``101 Switching Protocols``; the connection belongs to the returned transport."""
        conn = self.conn
        settings = conn.server.websocket_settings
        extensions: list[Extension] = []
        if settings.per_message_deflate:
            extensions.append(BoundedDeflate(settings.max_size))
        extra_headers = list(extra_headers or [])
        ids = conn.server.request_ids
        # --request-id-response: the 101 carries the id too, unless the application set it.
        if (
            ids is not None
            and ids.respond
            and conn.request_id is not None
            and all(name.lower() != ids.field for name, _ in extra_headers)
        ):
            extra_headers.append((ids.name, conn.request_id.encode("ascii")))
        accept = AcceptConnection(subprotocol=subprotocol, extensions=extensions, extra_headers=extra_headers)
        data = self.ws.send(accept)
        sock, pending = self.conn.take_over()
        # Messages are framed by greenserve unless per-message deflate was negotiated.
        compressing = any(extension.enabled() for extension in extensions)
        transport = WebSocketTransport(self.conn, sock, self.ws, settings, subprotocol, compressing)
        transport.write(data)
        transport.start(pending)
        return transport

    def reject_bytes(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
        """A plain HTTP refusal, as wsproto frames it (the connection is still HTTP)."""
        head = self.ws.send(RejectConnection(status_code=status, headers=headers, has_body=bool(body)))
        return head + (self.ws.send(RejectData(data=body)) if body else b"")


class WebSocketTransport:
    """An open WebSocket on a taken-over connection (see the module docstring)."""

    def __init__(
        self,
        conn: Connection,
        sock: Any,
        ws: WSConnection,
        settings: WebSocketSettings,
        subprotocol: str | None,
        compressing: bool = True,
    ) -> None:
        self.conn = conn
        self.sock = sock
        self.ws = ws
        self.settings = settings
        self.subprotocol = subprotocol
        #: Per-message deflate may be in use: messages are sent through wsproto, which compresses.
        self.compressing = compressing
        #: The pieces of a fragmented message received so far (from wsproto), and their size.
        self._parts: list[Any] = []
        self._size = 0
        self._write_lock = Semaphore()
        self._inbox: deque[str | bytes] = deque()
        self._arrived = Event()
        self._room = Event()
        self._room.set()
        self._pong = Event()
        self._peer_closed = Event()
        self._greenlets: list[Any] = []
        self.last_seen = time.monotonic()
        #: A close frame was sent.
        self.close_sent = False
        #: The connection failed (a frame error, 1009, a ping timeout): nothing more is read.
        self.failed = False
        #: The connection is over for the application: closed either way, or failed.
        self.closed = False
        #: The close code (1006 when the connection ended without a close frame).
        self.close_code = ABNORMAL
        self.close_reason = ""

    # -- life ---------------------------------------------------------------------------

    def start(self, pending: bytes) -> None:
        server = self.conn.server
        server.websockets.add(self)
        if server.metrics is not None:
            server.metrics.websocket_opened()
        self._greenlets.append(gevent.spawn(self._read, pending))
        if self.settings.ping_interval:
            self._greenlets.append(gevent.spawn(self._ping))

    def finish(self) -> None:
        """The application is done: complete the close handshake (briefly) and stop the greenlets."""
        if not self.close_sent and not self._peer_closed.is_set():
            self.close(NORMAL)
        if self.failed:
            # Nobody reads the peer's answer to a failure's close frame (RFC 6455 7.1.7):
            # close TCP at once instead of waiting CLOSE_TIMEOUT for it, half first
            # (a lingering close) so that unread input cannot turn the close into a
            # reset that destroys the close frame on its way.
            self.conn.linger = True
        elif self.close_sent and not self._peer_closed.is_set():
            self._peer_closed.wait(CLOSE_TIMEOUT)
        self.conn.server.websockets.discard(self)
        # Wait for them to end: the lingering close reads the socket next.
        gevent.killall(self._greenlets, block=True, timeout=1.0)
        self._mark_closed(self.close_code, self.close_reason)

    def going_away(self) -> None:
        """The worker is stopping: close with 1001 now (the application hears it as a close)."""
        self.close(GOING_AWAY, "server shutting down")

    # -- the application's side ---------------------------------------------------------

    def receive(self) -> str | bytes | None:
        """The next message (text as str, binary as bytes), or None once the WebSocket is closed."""
        inbox = self._inbox
        while not inbox:
            if self.closed:
                return None
            self._arrived.clear()
            self._arrived.wait()
        message = inbox.popleft()
        if len(inbox) < QUEUE_LIMIT:
            self._room.set()
        return message

    def send(self, message: str | bytes) -> None:
        """Send one message; raises ClientDisconnected once the WebSocket is closed."""
        if self.close_sent or self.closed:
            raise ClientDisconnected("the WebSocket is closed")
        if not self.compressing:
            # Framed here: a data frame changes nothing in wsproto's state, and this is a
            # third of the cost of wsproto's send() (bench/websocket.py).
            if isinstance(message, str):
                self.write(_server_frame(0x81, message.encode("utf-8")))
            else:
                self.write(_server_frame(0x82, bytes(message)))
            return
        event = TextMessage(data=message) if isinstance(message, str) else BytesMessage(data=bytes(message))
        try:
            self.write(self.ws.send(event))
        except LocalProtocolError as exc:  # pragma: no cover - guarded by close_sent above
            raise ClientDisconnected(str(exc)) from None

    def close(self, code: int = NORMAL, reason: str = "") -> None:
        """Send a close frame (once); the peer's answer ends the connection."""
        if self.close_sent or self._peer_closed.is_set() or self.closed:
            return
        self.close_sent = True
        self.close_code, self.close_reason = code, reason
        try:
            self.write(self.ws.send(CloseConnection(code=code, reason=reason)))
        except (ClientDisconnected, LocalProtocolError):
            self._mark_closed(ABNORMAL, "")

    def write(self, data: bytes) -> None:
        """Write frames (one writer at a time), within the send timeout."""
        with self._write_lock:
            try:
                send_within(self.sock, data, self.settings.send_timeout, self.conn.TLS)
            except OSError as exc:
                self._mark_closed(ABNORMAL, "")
                raise ClientDisconnected(f"the WebSocket peer is gone: {exc}") from None

    # -- greenlets --------------------------------------------------------------------------

    def _fail(self, code: int, reason: str) -> None:
        """Fail the WebSocket connection (RFC 6455 7.1.7): a close frame with ``code``, then
        nothing more is read from the peer and the connection closes once the application is done."""
        self.failed = True
        self.close(code, reason)
        self._mark_closed(code, reason)

    def _mark_closed(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            if not self.close_sent or code != ABNORMAL:
                self.close_code, self.close_reason = code, reason
            self._arrived.set()

    def _deliver(self, message: str | bytes) -> None:
        inbox = self._inbox
        inbox.append(message)
        if len(inbox) >= QUEUE_LIMIT:
            self._room.clear()
        self._arrived.set()

    def _read(self, data: bytes) -> None:
        """The reader greenlet: frames in, messages to the inbox, control frames answered.

        The common frame (whole, final, masked text or binary, not inside a
        fragmented message, at most FAST_FRAME_LIMIT and --ws-max-size) is
        decoded here, at twice wsproto's speed; every other frame is handed to
        wsproto whole, as its bytes arrive, so wsproto is always between frames
        when this code reads a header, and it judges everything unusual
        (fragments, control frames, compression, reserved bits, bad UTF-8, an
        unmasked frame).
        """
        max_size = self.settings.max_size
        fast_limit = min(FAST_FRAME_LIMIT, max_size) if max_size else FAST_FRAME_LIMIT
        ws = self.ws
        sock = self.sock
        # As Connection._serve does: once the peer's bytes are all read, wait until the
        # socket is readable rather than call recv(2) for an EAGAIN and its exception
        # (gevent's own wait; a TLS socket may hold decrypted bytes: it always reads).
        wait_readable = None if self.conn.TLS else getattr(sock, "_wait", None)
        read_event = getattr(sock, "_read_event", None)
        pending = b""  # the start of a frame whose header or (fast) payload is incomplete
        slow = 0  # bytes of the current frame still to hand to wsproto
        fragmented = False  # a fragmented message is in progress: its frames go to wsproto
        try:
            while True:
                if data:
                    self.last_seen = time.monotonic()
                    if pending:
                        data, pending = pending + data, b""
                    pos, end = 0, len(data)
                    while pos < end:
                        if slow:
                            take = min(slow, end - pos)
                            ws.receive_data(data[pos : pos + take])
                            pos += take
                            slow -= take
                            if not self._wsproto_events():
                                return
                            continue
                        if end - pos < 2:
                            break
                        first, second = data[pos], data[pos + 1]
                        length = second & 0x7F
                        start = pos + 2
                        if length == 126:
                            if end - pos < 4:
                                break
                            length = int.from_bytes(data[start : start + 2], "big")
                            start += 2
                        elif length == 127:
                            if end - pos < 10:
                                break
                            length = int.from_bytes(data[start : start + 8], "big")
                            start += 8
                        masked = second & 0x80
                        total = start - pos + (4 if masked else 0) + length
                        opcode = first & 0x0F
                        # 0x81/0x82: FIN, no reserved bit, text or binary.
                        if first in _FAST_FIRST_BYTES and masked and not fragmented and length <= fast_limit:
                            if end - pos < total:
                                break  # at most fast_limit bytes wait in `pending`
                            payload = _unmask(data[start + 4 : pos + total], data[start : start + 4])
                            if first == 0x81:
                                try:
                                    message: str | bytes = payload.decode("utf-8")
                                except UnicodeDecodeError:
                                    slow = total  # wsproto fails the connection with 1007
                                    continue
                            else:
                                message = payload
                            pos += total
                            self._deliver(message)
                            continue
                        if opcode in (1, 2):
                            fragmented = not first & 0x80
                        elif opcode == 0 and first & 0x80:
                            fragmented = False
                        slow = total
                    if pos < end:
                        pending = data[pos:]
                self._room.wait()
                if wait_readable is not None and read_event is not None and len(data) < _RECV:
                    wait_readable(read_event)  # (a full read: more may be there already)
                data = sock.recv(_RECV)
                if not data:
                    self._peer_closed.set()
                    self._mark_closed(ABNORMAL, "")
                    return
        except RemoteProtocolError as exc:
            log.debug("WebSocket protocol error: %s", exc)
            hint = getattr(exc, "event_hint", None)
            code = hint.code if isinstance(hint, CloseConnection) else PROTOCOL_ERROR
            self._fail(code, "protocol error")
        except OSError:
            self._peer_closed.set()
            self._mark_closed(ABNORMAL, "")

    def _wsproto_events(self) -> bool:
        """Act on what wsproto parsed; False when the reader must stop."""
        ws = self.ws
        max_size = self.settings.max_size
        for event in ws.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                self._size += len(event.data)
                if max_size and self._size > max_size:
                    self._fail(MESSAGE_TOO_BIG, "message too big")
                    return False
                self._parts.append(event.data)
                if event.message_finished:
                    joiner: Any = "" if isinstance(event, TextMessage) else b""
                    message = joiner.join(self._parts)
                    self._parts, self._size = [], 0
                    self._deliver(message)
            elif isinstance(event, Ping):
                with contextlib.suppress(ClientDisconnected, LocalProtocolError):
                    self.write(ws.send(event.response()))
            elif isinstance(event, Pong):
                self._pong.set()
            elif isinstance(event, CloseConnection):
                if ws.state in (ConnectionState.OPEN, ConnectionState.LOCAL_CLOSING):
                    # Not the peer's close: wsproto found a frame error (its
                    # state is unchanged), with the code to close with.
                    log.debug("WebSocket protocol error: %s", event.reason)
                    self._fail(event.code, event.reason or "")
                    return False
                # The peer closed: answer, unless we closed first.
                if not self.close_sent:
                    self.close_sent = True
                    with contextlib.suppress(ClientDisconnected, LocalProtocolError):
                        self.write(ws.send(event.response()))
                self._peer_closed.set()
                self._mark_closed(event.code, event.reason or "")
                return False
        return True

    def _ping(self) -> None:
        interval = self.settings.ping_interval
        timeout = self.settings.ping_timeout
        while not self.closed and not self.close_sent:
            gevent.sleep(interval)
            if self.closed or self.close_sent:
                return
            if time.monotonic() - self.last_seen < interval:
                continue
            self._pong.clear()
            try:
                self.write(self.ws.send(Ping(payload=b"greenserve")))
            except (ClientDisconnected, LocalProtocolError):
                return
            if timeout and not self._pong.wait(timeout):
                log.info("WebSocket ping timeout (%g s): closing", timeout)
                self._fail(INTERNAL_ERROR, "ping timeout")
                return


def send_within(sock: Any, data: bytes, timeout: float, tls: bool = False) -> None:
    """``sock.sendall(data)``, failing with a TimeoutError when the peer makes no room in time.

    Any greenlet may call it (the connection's deadline belongs to its own
    greenlet): one non-blocking send first, which is all a small frame needs,
    and a gevent timeout only around a wait for room.
    """
    raw = None if tls else getattr(sock, "_sock", None)  # the non-blocking socket under gevent's
    if raw is not None:
        try:
            sent = raw.send(data)
        except BlockingIOError:
            sent = 0
        if sent == len(data):
            return
        data = memoryview(data)[sent:]  # type: ignore[assignment]
    with gevent.Timeout(timeout, TimeoutError(f"the peer made no room to send in {timeout:g} s")):
        sock.sendall(data)


@functools.cache
def _invalid_handshake_class() -> type[HandshakeError]:
    """A HandshakeError that is also gevent-websocket's WebSocketError when it is installed."""
    try:
        from geventwebsocket.exceptions import WebSocketError
    except ImportError:
        return HandshakeError
    doc = "An invalid WebSocket handshake, catchable as gevent-websocket's WebSocketError."
    return type("InvalidHandshake", (HandshakeError, WebSocketError), {"__doc__": doc})


def _invalid_handshake(error: HandshakeError) -> HandshakeError:
    """What ``wsgi.websocket`` raises for an invalid handshake: an application may catch it as
    gevent-websocket's WebSocketError; if it lets it propagate, the client gets ``error``'s
    4xx response (Connection._failed), not a 500."""
    return _invalid_handshake_class()(f"invalid WebSocket handshake: {error}", error.status, error.headers)


def _websocket_error(message: str) -> Exception:
    """gevent-websocket's WebSocketError when it is installed (code may catch it), else OSError."""
    try:
        from geventwebsocket.exceptions import WebSocketError
    except ImportError:
        return ClientDisconnected(message)
    return WebSocketError(message)


class WSGIWebSocket:
    """``environ["wsgi.websocket"]``: gevent-websocket's WebSocket API, on greenserve's transport.

    Nothing is sent until the application uses it: an application that
    answers the upgrade request with a plain response (a 403, a 404) declines
    it. The first ``receive()``, ``send()`` or ``close()`` accepts it (101).
    """

    def __init__(self, conn: Connection, request: HTTPRequest, environ: dict[str, Any]) -> None:
        self.conn = conn
        self.request = request
        self.environ = environ
        self._handshake: WebSocketHandshake | None = None
        self.transport: WebSocketTransport | None = None
        #: receive() returned None: the application knows the WebSocket is closed.
        self._ended = False

    # gevent-websocket's attributes, from the handshake request
    @property
    def path(self) -> str:
        return str(self.environ.get("PATH_INFO", ""))

    @property
    def origin(self) -> str | None:
        return self.environ.get("HTTP_ORIGIN")

    @property
    def version(self) -> str | None:
        return self.environ.get("HTTP_SEC_WEBSOCKET_VERSION")

    @property
    def protocol(self) -> str | None:
        return self.transport.subprotocol if self.transport is not None else None

    @property
    def closed(self) -> bool:
        transport = self.transport
        return transport is not None and (transport.closed or transport.close_sent)

    @property
    def accepted(self) -> bool:
        return self.transport is not None

    def _open(self) -> WebSocketTransport:
        transport = self.transport
        if transport is None:
            try:
                self._handshake = handshake = WebSocketHandshake(self.conn, self.request)
            except HandshakeError as exc:
                raise _invalid_handshake(exc) from None
            transport = self.transport = handshake.accept()
        return transport

    def receive(self) -> str | bytes | None:
        """The next message, or None when the WebSocket has closed.

        As with gevent-websocket, None comes once: a further ``receive()``
        raises WebSocketError. Loops that wait for that error (gevent-websocket's
        ``WebSocketApplication.handle``) end, instead of spinning on None
        without ever yielding to the other greenlets.
        """
        if self._ended:
            raise _websocket_error("Connection is already closed")
        message = self._open().receive()
        if message is None:
            self._ended = True
        return message

    def send(self, message: str | bytes, binary: bool | None = None) -> None:
        """Send ``message``: text for a str, binary for bytes (or as ``binary`` says)."""
        transport = self._open()
        if binary is None:
            binary = not isinstance(message, str)
        if binary and isinstance(message, str):
            message = message.encode("utf-8")
        elif not binary and not isinstance(message, str):
            message = bytes(message).decode("utf-8")
        try:
            transport.send(message)
        except ClientDisconnected:
            raise _websocket_error("Socket is dead") from None

    def close(self, code: int = NORMAL, message: bytes | str = b"") -> None:
        reason = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
        self._open().close(code, reason)


class TakeoverSocket:
    """``environ["gunicorn.socket"]`` on an upgrade request: the raw socket, for libraries that
    speak WebSocket themselves.

    The first use takes the connection over (greenserve then writes nothing on
    it); bytes greenserve had already received after the request head are read
    first. ``send`` writes everything it is given (simple-websocket sends a
    whole frame with one ``send``), within the client timeout.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._sock: Any = None
        self._pending = b""
        self._writing = 0

    @property
    def taken(self) -> bool:
        return self._sock is not None

    def _take(self) -> Any:
        sock = self._sock
        if sock is None:
            sock, self._pending = self._conn.take_over()
            self._sock = sock
            server = self._conn.server
            server.websockets.add(self)
            if server.metrics is not None:
                server.metrics.websocket_opened()
        return sock

    def recv(self, size: int, flags: int = 0) -> bytes:
        sock = self._take()
        pending = self._pending
        if pending:
            self._pending = pending[size:]
            return pending[:size]
        return sock.recv(size, flags)

    def send(self, data: bytes, flags: int = 0) -> int:
        self.sendall(data, flags)
        return len(data)

    def sendall(self, data: bytes, flags: int = 0) -> None:
        sock = self._take()
        self._writing += 1
        try:
            send_within(sock, data, self._conn.server.client_timeout, self._conn.TLS)
        finally:
            self._writing -= 1

    def fileno(self) -> int:
        return int(self._take().fileno())

    def close(self) -> None:
        """The library is done with the socket: greenserve closes it when the application returns."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(2)

    def going_away(self) -> None:
        """The worker is stopping: a close frame (1001) if no frame is being written."""
        if self._sock is not None and not self._writing:
            with contextlib.suppress(OSError):
                self._sock.sendall(b"\x88\x02\x03\xe9")  # FIN + close, 2 bytes: 1001

    def finish(self) -> None:
        self._conn.server.websockets.discard(self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._take(), name)
