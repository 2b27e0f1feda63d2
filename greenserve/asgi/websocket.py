"""WebSockets for ASGI applications, over the HTTP/1.1 Upgrade, with wsproto.

The connection's greenlet runs the session: it answers the application's
messages (accept, send, close), a reader greenlet turns frames into
``websocket.receive`` messages, and a pinger keeps idle connections honest.
Until the application accepts, nothing has been sent: a close (or the
``websocket.http.response`` denial extension) is a plain HTTP response on
the still-HTTP connection.

Memory is bounded: a message larger than ``--ws-max-size`` closes the
connection with 1009, and the reader stops reading the socket while the
application has not taken the messages already queued for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import Event
from gevent.lock import Semaphore
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from greenserve.asgi.loop_thread import fail_future as _fail
from greenserve.asgi.loop_thread import resolve_future as _resolve
from greenserve.errors import ClientDisconnected
from greenserve.logs import escape
from greenserve.protocol.events import Request as HTTPRequest

if TYPE_CHECKING:
    from greenserve.asgi.bridge import ASGIBridge, Connection

#: A refusal of the upgrade, answered as plain HTTP: (status, ASGI headers, body).
Denial = tuple[int, list[tuple[bytes, bytes]], bytes]

log = logging.getLogger("greenserve.error")

_QUEUE_LIMIT = 16  # messages waiting for the application before reading pauses
_RECV = 64 * 1024

_NEED, _ACCEPT, _SEND, _CLOSE, _DENY_START, _DENY_BODY, _DONE = range(7)


class WebSocketSession:
    """One WebSocket between a client and an ASGI application task."""

    def __init__(
        self, bridge: ASGIBridge, connection: Connection, request: HTTPRequest, scope: dict[str, Any]
    ) -> None:
        self.bridge = bridge
        self.scope = scope
        self.loop_thread = bridge.loop_thread
        self.connection = connection
        self.request = request
        self.ws = WSConnection(ConnectionType.SERVER)
        self.sock: Any = None
        self.write_lock = Semaphore()
        self.inbox: deque = deque()
        self.event = Event()
        self.to_app: deque[dict[str, Any]] = deque()
        self.waiting: asyncio.Future | None = None
        self.room = Event()  # set while the application's queue has room
        self.room.set()
        self.connect_sent = False
        self.accepted = False
        self.closed = False  # a close frame was sent or received, or the socket failed
        self.finished = False  # the greenlet stopped serving the session
        self.close_code = 1000
        self.last_seen = time.monotonic()
        self.pong = Event()
        self.greenlets: list[Any] = []
        self.deny_status: dict[str, Any] | None = None

    # -- loop thread: the application's receive and send ---------------------------------

    def _post(self, kind: int, payload: Any, future: asyncio.Future | None) -> None:
        self.loop_thread.to_hub(self._deliver, kind, payload, future)

    def _deliver(self, kind: int, payload: Any, future: asyncio.Future | None) -> None:
        if self.finished:
            if future is not None:
                answer = {"type": "websocket.disconnect", "code": self.close_code} if kind == _NEED else None
                self.loop_thread.to_loop(_resolve, future, answer)
            return
        self.inbox.append((kind, payload, future))
        self.event.set()

    async def _receive(self) -> dict[str, Any]:
        if not self.connect_sent:
            self.connect_sent = True
            return {"type": "websocket.connect"}
        future = asyncio.get_running_loop().create_future()
        self._post(_NEED, None, future)
        return await future

    async def _send(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        future = asyncio.get_running_loop().create_future()
        if kind == "websocket.accept":
            self._post(_ACCEPT, message, future)
        elif kind == "websocket.send":
            self._post(_SEND, message, future)
        elif kind == "websocket.close":
            self._post(_CLOSE, message, future)
        elif kind == "websocket.http.response.start":
            self._post(_DENY_START, message, future)
        elif kind == "websocket.http.response.body":
            self._post(_DENY_BODY, message, future)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} for a WebSocket")
        await future

    def _start_task(self, scope: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self.bridge.app(scope, self._receive, self._send))
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._post(_DONE, None if task.cancelled() else task.exception(), None)

    # -- greenlet: the session ------------------------------------------------------------

    def run(self) -> Denial | None:
        """Run the session in this greenlet; a denial to answer as HTTP, or None once switched."""
        request = self.request
        head = [b"GET " + request.target + b" HTTP/1.1\r\n"]
        head += [name + b": " + value + b"\r\n" for name, value in request.headers]
        try:
            self.ws.receive_data(b"".join(head) + b"\r\n")
            event = next(self.ws.events())
        except (RemoteProtocolError, StopIteration) as exc:
            log.info("invalid WebSocket handshake: %s", escape(str(exc)))
            return 400, [(b"content-type", b"text/plain")], b"Invalid WebSocket handshake\n"
        assert isinstance(event, Request)
        scope = self.scope
        scope["subprotocols"] = list(event.subprotocols)
        self.loop_thread.to_loop(self._start_task, scope)
        self.bridge.websockets.add(self)
        try:
            return self._serve()
        finally:
            self.bridge.websockets.discard(self)
            self.finished = True
            for greenlet in self.greenlets:
                greenlet.kill(block=False)
            self._answer_leftovers()
            if self.sock is not None:
                with contextlib.suppress(OSError):
                    self.sock.close()

    def _serve(self) -> Denial | None:
        to_loop = self.loop_thread.to_loop
        deny_body: list[bytes] = []
        while True:
            while not self.inbox:
                self.event.wait()
                self.event.clear()
            kind, payload, future = self.inbox.popleft()
            if kind == _NEED:
                if self.to_app:
                    to_loop(_resolve, future, self.to_app.popleft())
                    if len(self.to_app) < _QUEUE_LIMIT:
                        self.room.set()
                elif self.closed or not self.accepted:
                    to_loop(_resolve, future, {"type": "websocket.disconnect", "code": self.close_code})
                else:
                    self.waiting = future
            elif kind == _SEND:
                error = self._send_message(payload)
                if error is None:
                    to_loop(_resolve, future, None)
                else:
                    to_loop(_fail, future, error)
            elif kind == _ACCEPT:
                error = self._accept(payload)
                if error is None:
                    to_loop(_resolve, future, None)
                else:
                    to_loop(_fail, future, error)
            elif kind == _CLOSE:
                to_loop(_resolve, future, None)
                if not self.accepted:
                    return self._deny(403, [], b"")
                self._close(payload.get("code", 1000), payload.get("reason") or "")
            elif kind == _DENY_START:
                to_loop(_resolve, future, None)
                self.deny_status = payload
            elif kind == _DENY_BODY:
                to_loop(_resolve, future, None)
                deny_body.append(payload.get("body", b""))
                if not payload.get("more_body", False) and self.deny_status is not None:
                    start = self.deny_status
                    return self._deny(int(start["status"]), start.get("headers", []), b"".join(deny_body))
            else:  # _DONE
                return self._app_done(payload)

    def _deny(self, status: int, headers: list, body: bytes) -> Denial:
        """Refuse the upgrade with a plain HTTP response (the connection is still HTTP)."""
        return status, [(bytes(name), bytes(value)) for name, value in headers], body

    def _app_done(self, error: BaseException | None) -> Denial | None:
        target = self.request.target.decode("latin-1")[:200]
        if error is not None and not isinstance(error, ClientDisconnected):
            # After the peer closed, frameworks raise their own "disconnected"
            # exceptions out of the app (Starlette's WebSocketDisconnect): not an error.
            level = logging.DEBUG if self.closed else logging.ERROR
            log.log(level, "ASGI WebSocket application error (%r)", target, exc_info=error)
        if not self.accepted:
            return self._deny(500 if error is not None else 403, [], b"")
        if not self.closed:
            self._close(1011 if error is not None else 1000, "")
        return None

    # -- frames ---------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        with self.write_lock:
            self.sock.sendall(data)

    def _accept(self, message: dict[str, Any]) -> BaseException | None:
        if self.accepted:
            return RuntimeError("websocket.accept sent twice")
        headers = [(bytes(name), bytes(value)) for name, value in message.get("headers", ())]
        try:
            data = self.ws.send(
                AcceptConnection(subprotocol=message.get("subprotocol"), extra_headers=headers)
            )
        except LocalProtocolError as exc:
            return RuntimeError(f"websocket.accept: {exc}")
        self.sock, pending = self.connection.take_over()
        self.sock.settimeout(None)
        try:
            self._write(data)
        except OSError as exc:
            self.closed = True
            return ClientDisconnected(str(exc))
        self.accepted = True
        self.greenlets.append(gevent.spawn(self._reader, pending))
        if self.bridge.ws_ping_interval:
            self.greenlets.append(gevent.spawn(self._pinger))
        return None

    def _send_message(self, message: dict[str, Any]) -> BaseException | None:
        if not self.accepted:
            return RuntimeError("websocket.send before websocket.accept")
        if self.closed:
            return ClientDisconnected("the WebSocket is closed")
        text = message.get("text")
        event = TextMessage(data=text) if text is not None else BytesMessage(data=message.get("bytes") or b"")
        try:
            self._write(self.ws.send(event))
        except (OSError, LocalProtocolError) as exc:
            self._gone(1006)
            return ClientDisconnected(str(exc))
        return None

    def _close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        with contextlib.suppress(OSError, LocalProtocolError):
            self._write(self.ws.send(CloseConnection(code=code, reason=reason)))

    def _gone(self, code: int) -> None:
        """The peer closed or the socket failed: tell a waiting receive()."""
        self.closed = True
        self.close_code = code
        self._offer({"type": "websocket.disconnect", "code": code})

    def _offer(self, message: dict[str, Any]) -> None:
        """Give a message to the application (or queue it)."""
        waiting = self.waiting
        if waiting is not None:
            self.waiting = None
            self.loop_thread.to_loop(_resolve, waiting, message)
            return
        self.to_app.append(message)
        if len(self.to_app) >= _QUEUE_LIMIT:
            self.room.clear()

    def _reader(self, pending: bytes) -> None:
        max_size = self.bridge.ws_max_size
        parts: list[Any] = []
        size = 0
        data = pending
        try:
            while True:
                if data:
                    self.last_seen = time.monotonic()
                    self.ws.receive_data(data)
                    for event in self.ws.events():
                        if isinstance(event, (TextMessage, BytesMessage)):
                            parts.append(event.data)
                            size += len(event.data)
                            if max_size and size > max_size:
                                self._close(1009, "message too big")
                                self._gone(1009)
                                return
                            if event.message_finished:
                                message: dict[str, Any]
                                if isinstance(event, TextMessage):
                                    message = {"type": "websocket.receive", "text": "".join(parts)}
                                else:
                                    message = {"type": "websocket.receive", "bytes": b"".join(parts)}
                                parts, size = [], 0
                                self._offer(message)
                        elif isinstance(event, Ping):
                            self._write(self.ws.send(event.response()))
                        elif isinstance(event, Pong):
                            self.pong.set()
                        elif isinstance(event, CloseConnection):
                            if not self.closed:
                                with contextlib.suppress(OSError, LocalProtocolError):
                                    self._write(self.ws.send(event.response()))
                            self._gone(event.code)
                            return
                else:
                    data = b""
                self.room.wait()
                data = self.sock.recv(_RECV)
                if not data:
                    self._gone(1006)
                    return
        except RemoteProtocolError as exc:
            log.debug("WebSocket protocol error: %s", escape(str(exc)))
            self._close(1002, "protocol error")
            self._gone(1002)
        except OSError:
            self._gone(1006)

    def _pinger(self) -> None:
        interval = self.bridge.ws_ping_interval
        timeout = self.bridge.ws_ping_timeout
        while not self.closed:
            gevent.sleep(interval)
            if self.closed:
                return
            if time.monotonic() - self.last_seen < interval:
                continue
            self.pong.clear()
            try:
                self._write(self.ws.send(Ping(payload=b"greenserve")))
            except (OSError, LocalProtocolError):
                self._gone(1006)
                return
            if timeout and not self.pong.wait(timeout):
                log.info("WebSocket ping timeout: closing")
                self._close(1011, "ping timeout")
                self._gone(1011)
                return

    def server_closing(self, code: int) -> None:
        """The worker is stopping: send a close frame and tell the application."""
        if self.accepted and not self.closed:
            self._close(code, "server shutting down")
            self._gone(code)

    def _answer_leftovers(self) -> None:
        to_loop = self.loop_thread.to_loop
        disconnect = {"type": "websocket.disconnect", "code": self.close_code}
        if self.waiting is not None:
            to_loop(_resolve, self.waiting, disconnect)
            self.waiting = None
        for kind, _payload, future in self.inbox:
            if future is not None:
                to_loop(_resolve, future, disconnect if kind == _NEED else None)
        self.inbox.clear()
