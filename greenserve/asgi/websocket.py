"""WebSockets for ASGI applications: ASGI messages over the worker's WebSocket transport.

The connection's greenlet runs the session: it answers the application's
messages (accept, send, close), and a pump greenlet hands it received
messages one ``receive()`` at a time (backpressure: the transport stops
reading while the application has not taken what it queued). Frames, pings,
``--ws-max-size``, compression and the close handshake are the transport's
(:mod:`greenserve.worker.websocket`), shared with WSGI applications; the
connection provides it (``connection.websocket_handshake``), so this module
imports nothing from the worker.

Until the application accepts, nothing has been sent: a close (or the
``websocket.http.response`` denial extension) is a plain HTTP response on
the still-HTTP connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

import gevent
from gevent.event import Event

from greenserve.asgi.loop_thread import fail_future, resolve_future
from greenserve.errors import ClientDisconnected
from greenserve.logs import escape
from greenserve.protocol.events import Request
from greenserve.protocol.websocket import HandshakeError

if TYPE_CHECKING:
    from greenserve.asgi.bridge import ASGIBridge, Connection

log = logging.getLogger("greenserve.error")

#: A refusal of the upgrade, answered as plain HTTP: (status, ASGI headers, body).
Denial = tuple[int, list[tuple[bytes, bytes]], bytes]

_NEED, _ACCEPT, _SEND, _CLOSE, _DENY_START, _DENY_BODY, _DONE = range(7)


class Transport(Protocol):
    """The worker's open WebSocket (greenserve.worker.websocket.WebSocketTransport)."""

    closed: bool
    close_sent: bool
    close_code: int

    def receive(self) -> str | bytes | None: ...

    def send(self, message: str | bytes) -> None: ...

    def close(self, code: int = 1000, reason: str = "") -> None: ...

    def finish(self) -> None: ...


class WebSocketSession:
    """One WebSocket between a client and an ASGI application task."""

    def __init__(self, bridge: ASGIBridge, connection: Connection, request: Request, scope: dict[str, Any]):
        self.bridge = bridge
        self.scope = scope
        self.loop_thread = bridge.loop_thread
        self.connection = connection
        self.request = request
        self.handshake: Any = None
        self.transport: Transport | None = None
        # Hub side.
        self.inbox: deque = deque()
        self.event = Event()
        self.needs: deque[asyncio.Future] = deque()
        self.need = Event()
        self.finished = False
        self.pump: Any = None
        # Loop side.
        self.connect_sent = False

    # -- loop thread: the application's receive and send ---------------------------------

    def _post(self, kind: int, payload: Any, future: asyncio.Future | None) -> None:
        self.loop_thread.to_hub(self._deliver, kind, payload, future)

    def _deliver(self, kind: int, payload: Any, future: asyncio.Future | None) -> None:
        if self.finished:
            if future is not None:
                answer = self._disconnect() if kind == _NEED else None
                self.loop_thread.to_loop(resolve_future, future, answer)
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
        from_connection = self.connection.websocket_handshake
        try:
            self.handshake = from_connection(self.request)
        except HandshakeError as exc:
            log.info("invalid WebSocket handshake: %s", escape(str(exc)))
            return exc.response()
        self.scope["subprotocols"] = list(self.handshake.subprotocols)
        self.loop_thread.to_loop(self._start_task, self.scope)
        try:
            return self._serve()
        finally:
            self.finished = True
            if self.pump is not None:
                self.pump.kill(block=False)
            if self.transport is not None:
                self.transport.finish()
            self._answer_leftovers()

    def _disconnect(self) -> dict[str, Any]:
        transport = self.transport
        code = transport.close_code if transport is not None else 1006
        return {"type": "websocket.disconnect", "code": code}

    def _serve(self) -> Denial | None:
        to_loop = self.loop_thread.to_loop
        deny_start: dict[str, Any] | None = None
        deny_body: list[bytes] = []
        while True:
            while not self.inbox:
                self.event.wait()
                self.event.clear()
            kind, payload, future = self.inbox.popleft()
            transport = self.transport
            if kind == _NEED:
                if transport is None or transport.closed:
                    to_loop(resolve_future, future, self._disconnect())
                else:
                    self.needs.append(future)
                    self.need.set()
            elif kind == _SEND:
                self._answer(future, self._send_message(payload))
            elif kind == _ACCEPT:
                self._answer(future, self._accept(payload))
            elif kind == _CLOSE:
                to_loop(resolve_future, future, None)
                if transport is None:
                    return 403, [], b""
                transport.close(payload.get("code", 1000), payload.get("reason") or "")
            elif kind == _DENY_START:
                to_loop(resolve_future, future, None)
                deny_start = payload
            elif kind == _DENY_BODY:
                to_loop(resolve_future, future, None)
                deny_body.append(payload.get("body", b""))
                if not payload.get("more_body", False) and deny_start is not None:
                    return int(deny_start["status"]), list(deny_start.get("headers", [])), b"".join(deny_body)
            else:  # _DONE
                return self._app_done(payload)

    def _answer(self, future: asyncio.Future, error: BaseException | None) -> None:
        if error is None:
            self.loop_thread.to_loop(resolve_future, future, None)
        else:
            self.loop_thread.to_loop(fail_future, future, error)

    def _accept(self, message: dict[str, Any]) -> BaseException | None:
        if self.transport is not None:
            return RuntimeError("websocket.accept sent twice")
        headers = [(bytes(name), bytes(value)) for name, value in message.get("headers", ())]
        try:
            self.transport = self.handshake.accept(message.get("subprotocol"), headers)
        except ClientDisconnected as exc:
            return exc
        except Exception as exc:  # noqa: BLE001 - a bad subprotocol or header from the application
            return RuntimeError(f"websocket.accept: {exc}")
        self.pump = gevent.spawn(self._pump)
        return None

    def _send_message(self, message: dict[str, Any]) -> BaseException | None:
        transport = self.transport
        if transport is None:
            return RuntimeError("websocket.send before websocket.accept")
        text = message.get("text")
        try:
            transport.send(text if text is not None else (message.get("bytes") or b""))
        except ClientDisconnected as exc:
            return exc
        return None

    def _pump(self) -> None:
        """Hand received messages to the application, one per receive() it awaits."""
        transport = self.transport
        assert transport is not None
        to_loop = self.loop_thread.to_loop
        while True:
            while not self.needs:
                self.need.clear()
                self.need.wait()
            message = transport.receive()
            future = self.needs.popleft()
            if message is None:
                to_loop(resolve_future, future, self._disconnect())
                while True:  # closed: every later receive() gets the disconnect at once
                    while not self.needs:
                        self.need.clear()
                        self.need.wait()
                    to_loop(resolve_future, self.needs.popleft(), self._disconnect())
            key = "text" if isinstance(message, str) else "bytes"
            to_loop(resolve_future, future, {"type": "websocket.receive", key: message})

    def _app_done(self, error: BaseException | None) -> Denial | None:
        transport = self.transport
        if error is not None and not isinstance(error, ClientDisconnected):
            # After the peer closed, frameworks raise their own "disconnected"
            # exceptions out of the app (Starlette's WebSocketDisconnect): not an error.
            closed = transport is not None and transport.closed
            target = self.request.target.decode("latin-1")[:200]
            level = logging.DEBUG if closed else logging.ERROR
            log.log(level, "ASGI WebSocket application error (%r)", target, exc_info=error)
        if transport is None:
            return (500 if error is not None else 403), [], b""
        if not transport.closed and not transport.close_sent:
            transport.close(1011 if error is not None else 1000, "")
        return None

    def _answer_leftovers(self) -> None:
        to_loop = self.loop_thread.to_loop
        disconnect = self._disconnect()
        while self.needs:
            to_loop(resolve_future, self.needs.popleft(), disconnect)
        for kind, _payload, future in self.inbox:
            if future is not None:
                to_loop(resolve_future, future, disconnect if kind == _NEED else None)
        self.inbox.clear()
