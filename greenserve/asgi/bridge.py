"""ASGI applications served by greenserve's gevent workers.

:class:`ASGIBridge` wraps an ASGI application. The worker calls
:meth:`ASGIBridge.serve_request` for each request it parsed: the request's
greenlet builds the scope, starts ``app(scope, receive, send)`` as a task on
the worker's loop thread, and turns the application's messages into response
events for the connection's :class:`~greenserve.protocol.exchange.Exchange`:

- ``receive()`` asks the greenlet for the next piece of the body, which it
  reads from the client only then (backpressure: the body is never read
  ahead of the application). A request without a body gets its one
  ``http.request`` message without a round trip.
- ``send()`` hands each message to the greenlet. The response head and the
  final body piece need no answer; an intermediate body piece is
  acknowledged only once greenserve has written it to the socket, so a slow
  client slows the application down instead of filling memory.
- Once the body is read, a ``receive()`` that waits is answered with
  ``http.disconnect`` when the client goes away (Starlette's streaming
  responses listen for exactly that).

WebSocket upgrades go to :mod:`greenserve.asgi.websocket` the same way.

A bridge is also a WSGI callable, so it can be mounted inside a WSGI
application (path dispatch), to serve Flask and FastAPI side by side in one
worker, or even under another WSGI server.

The greenlet and the task meet only through the loop thread's two crossings
(``to_loop`` and ``to_hub``): every field of :class:`HTTPCycle` belongs to one
side, which the slot list says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Generator, Iterator
from typing import Any, Protocol

import gevent
from gevent.hub import Waiter

from greenserve.asgi.loop_thread import LoopThread, fail_future, get_loop_thread, resolve_future
from greenserve.asgi.scope import ConnectionInfo, scope_for_environ, scope_for_request
from greenserve.errors import ClientDisconnected, RequestTimeout
from greenserve.logs import escape, request_summary
from greenserve.protocol.events import Request
from greenserve.protocol.exchange import Exchange
from greenserve.protocol.response import Head, ResponseError, status_text

log = logging.getLogger("greenserve.error")

_BODY_CHUNK = 64 * 1024

# Messages to the greenlet: (kind, payload, future-to-resolve-or-None).
_START = 1
_BODY = 2
_NEED_BODY = 3
_DONE = 4
_START_BODY = 5  # the head with the first body piece: one wake-up for both

_DISCONNECT = {"type": "http.disconnect"}


class Connection(ConnectionInfo, Protocol):
    """What the bridge uses of a greenserve worker connection."""

    exchange: Exchange
    #: Called once by the worker when the client's side closes during a long request.
    on_client_gone: Callable[[], None] | None

    def sendall(self, data: bytes) -> None: ...

    def websocket_handshake(self, request: Request) -> Any:
        """The WebSocket handshake of ``request`` (raises ValueError when invalid); see asgi/websocket.py."""

    def take_over(self) -> tuple[Any, bytes]: ...

    def wait_for_eof(self) -> bool: ...


class Body(Protocol):
    """A request body being received (the worker's ``wsgi.input``)."""

    #: The whole body has been received.
    done: bool

    def read1(self, size: int = -1) -> bytes: ...


def wrap_asgi2(app: Any) -> Callable:
    """ASGI 2 (``app(scope)`` returning ``async (receive, send)``) as ASGI 3."""

    async def asgi3(scope: dict, receive: Callable, send: Callable) -> None:
        instance = app(scope)
        await instance(receive, send)

    return asgi3


def _is_websocket(request: Request) -> bool:
    return request.upgrade is not None and request.upgrade.lower() == b"websocket" and request.method == "GET"


class ASGIBridge:
    """An ASGI application, served natively by a greenserve worker (or mounted as WSGI).

    ``state`` is the lifespan state, copied into every request's scope.
    WebSockets use the worker's settings (``--ws-max-size``, pings,
    compression) and its graceful shutdown.
    """

    def __init__(
        self,
        app: Callable,
        *,
        loop_thread: LoopThread | None = None,
        interface: str = "asgi3",
        cancel_grace: float = 1.0,
    ) -> None:
        self.app = wrap_asgi2(app) if interface == "asgi2" else app
        self._loop_thread = loop_thread
        self.state: dict[str, Any] = {}
        #: After the client left or --request-timeout expired: how long the task may run on.
        self.cancel_grace = cancel_grace

    @property
    def loop_thread(self) -> LoopThread:
        if self._loop_thread is None:
            self._loop_thread = get_loop_thread()
        return self._loop_thread

    # -- native: a greenserve worker's request ------------------------------------------

    def serve_request(self, connection: Connection, request: Request, body: Body) -> None:
        """Serve one request parsed by a greenserve worker, writing through its exchange."""
        if request.upgrade is not None and _is_websocket(request):
            from greenserve.asgi.websocket import WebSocketSession

            scope = scope_for_request("websocket", request, connection, self.state)
            denial = WebSocketSession(self, connection, request, scope).run()
            if denial is not None:
                status, headers, data = denial
                exchange = connection.exchange
                connection.sendall(exchange.send_head(Head.from_asgi(status, headers), data, end=True))
            return
        scope = scope_for_request("http", request, connection, self.state)
        HTTPCycle(self, connection, request).serve(scope, request.has_body, body)

    # -- WSGI: mounted in a WSGI application --------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        request = environ.get("greenserve.request")
        connection = environ.get("greenserve.connection")
        if request is not None and connection is not None and _is_websocket(request):
            from greenserve.asgi.websocket import WebSocketSession

            scope = scope_for_environ("websocket", environ, self.state)
            denial = WebSocketSession(self, connection, request, scope).run()
            if denial is None:
                return []  # the connection was switched: the worker sends nothing more
            status, headers, data = denial
            start_response(status_text(status), _text_headers(headers, data, complete=True))
            return [data]
        has_body = request.has_body if request is not None else bool(environ.get("CONTENT_LENGTH"))
        cycle = HTTPCycle(self, connection, request, environ)
        cycle.begin(scope_for_environ("http", environ, self.state), has_body)
        return cycle.wsgi_iterable(environ["wsgi.input"], start_response)


class HTTPCycle:
    """One HTTP request/response between a greenlet and an ASGI application task."""

    __slots__ = (  # noqa: RUF023 - grouped by the thread that owns them
        # Constant.
        "bridge",
        "connection",
        "environ",
        "loop_thread",
        "request",
        # The loop thread's (the application's receive and send).
        "_complete",
        "_first",
        "_gone",
        "_start",
        "_task",
        # The hub's (the greenlet and the callbacks to_hub runs).
        "_body_done",
        "_closed",
        "_disconnected",
        "_inbox",
        "_pending_receive",
        "_response_done",
        "_waiter",
        "_watcher",
    )

    def __init__(
        self,
        bridge: ASGIBridge,
        connection: Connection | None,
        request: Request | None,
        environ: dict[str, Any] | None = None,
    ) -> None:
        self.bridge = bridge
        #: The greenserve connection and parsed request (None under another server).
        self.connection = connection
        self.request = request
        #: Mounted in a WSGI application: its environ (for error messages).
        self.environ = environ
        self.loop_thread = bridge._loop_thread or bridge.loop_thread
        self._task: asyncio.Task | None = None
        #: The one ``http.request`` of a request without a body, answered without a round trip.
        self._first: dict[str, Any] | None = None
        #: The last body message was sent.
        self._complete = False
        #: The greenlet said the client went away (through to_loop): receive() answers at once.
        self._gone = False
        #: http.response.start, held until the first body message (one crossing for both).
        self._start: dict[str, Any] | None = None
        self._inbox: deque = deque()
        #: Set while the greenlet waits for a message (a hub Waiter: no callback round).
        self._waiter: Waiter | None = None
        self._body_done = False
        #: The greenlet stopped serving this cycle: late messages are answered at once.
        self._closed = False
        self._disconnected = False
        self._response_done = False
        self._pending_receive: asyncio.Future | None = None
        self._watcher: Any = None

    # -- loop thread side (the app's receive and send) ---------------------------------

    def _post(self, kind: int, payload: Any, future: asyncio.Future | None) -> None:
        """In the loop thread: give a message to the greenlet."""
        self.loop_thread.to_hub(self._deliver, kind, payload, future)

    async def _receive(self) -> dict[str, Any]:
        first = self._first
        if first is not None:
            self._first = None
            return first
        if self._gone or self._complete:
            # Without an await: Starlette's is_disconnected() polls receive() in a
            # scope cancelled at its first await.
            return _DISCONNECT
        future = asyncio.get_running_loop().create_future()
        self._post(_NEED_BODY, None, future)
        return await future

    async def _send(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "http.response.start":
            if self._start is not None:
                raise RuntimeError("ASGI: http.response.start sent twice")
            self._start = message  # crosses with the first body message: one wake-up
        elif kind == "http.response.body":
            if self._complete:
                raise RuntimeError("ASGI: http.response.body after the response was complete")
            start = self._start
            kind_out: int = _BODY
            payload: Any = message
            if start is not None and start is not _SENT:
                self._start = _SENT
                kind_out, payload = _START_BODY, (start, message)
            if message.get("more_body", False):
                future = asyncio.get_running_loop().create_future()
                self._post(kind_out, payload, future)
                await future  # written to the socket: backpressure
            else:
                self._complete = True
                self._post(kind_out, payload, None)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} for an HTTP request")

    def _start_task(self, scope: dict[str, Any], first: dict[str, Any] | None) -> None:
        """In the loop thread: run the application for this request."""
        self._first = first
        # Named: Python 3.11 formats a "Task-<n>" name for every unnamed task.
        self._task = asyncio.get_running_loop().create_task(self._run_app(scope), name="greenserve.http")

    async def _run_app(self, scope: dict[str, Any]) -> None:
        # Ends the cycle itself: cheaper than a done callback (one handle less per request).
        try:
            await self.bridge.app(scope, self._receive, self._send)
        except asyncio.CancelledError:
            self._app_ended(None)
        except Exception as exc:  # noqa: BLE001 - reported by the greenlet, with its traceback
            self._app_ended(exc)
        except BaseException as exc:  # SystemExit, KeyboardInterrupt: the greenlet hears, then the loop
            self._app_ended(exc)
            raise
        else:
            self._app_ended(None)

    def _client_gone(self) -> None:
        """In the loop thread: the client went away (or the greenlet stopped serving this cycle)."""
        self._gone = True

    def _cancel_task(self) -> None:
        """In the loop thread: the client left, or --request-timeout gave up on this request.

        ``receive()`` answers ``http.disconnect`` from now on; the task is
        cancelled if it still runs after the bridge's grace period.
        """
        self._gone = True
        task = self._task
        if task is not None and not task.done():
            grace = self.bridge.cancel_grace
            if grace:
                asyncio.get_running_loop().call_later(grace, _cancel, task)
            else:
                task.cancel()

    def _app_ended(self, error: BaseException | None) -> None:
        start = self._start
        if start is not None and start is not _SENT:
            self._start = _SENT
            self._post(_START, start, None)  # a head with no body message
        if error is None and self._complete:
            return  # the response is complete and the app ended cleanly: nothing to say
        self._post(_DONE, error, None)

    # -- hub side --------------------------------------------------------------------------

    def _deliver(self, kind: int, payload: Any, future: asyncio.Future | None) -> None:
        """In the hub: queue the message and wake the greenlet."""
        if self._closed:
            self._late(kind, payload, future)
            return
        self._inbox.append((kind, payload, future))
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.switch(None)  # straight into the waiting greenlet, from the hub

    def _late(self, kind: int, payload: Any, future: asyncio.Future | None) -> None:
        """A message after the greenlet stopped serving this cycle: answer it at once."""
        to_loop = self.loop_thread.to_loop
        if kind == _NEED_BODY:
            to_loop(resolve_future, future, _DISCONNECT)
        elif future is not None:
            if self._disconnected:  # the client went away: the application should stop sending
                to_loop(fail_future, future, ClientDisconnected("the client went away"))
            else:
                to_loop(resolve_future, future, None)
        elif kind == _DONE and payload is not None and not isinstance(payload, ClientDisconnected):
            log.error("ASGI application error after its response (%s)", self._describe(), exc_info=payload)

    def begin(self, scope: dict[str, Any], has_body: bool) -> None:
        """Start the application's task for ``scope``."""
        first = None
        if not has_body:
            first = {"type": "http.request", "body": b"", "more_body": False}
            self._body_done = True
        self.loop_thread.to_loop(self._start_task, scope, first)

    def serve(self, scope: dict[str, Any], has_body: bool, body: Body) -> None:
        """Native mode: the application's response goes straight to the connection's exchange."""
        connection = self.connection
        assert connection is not None
        exchange = connection.exchange
        sendall = connection.sendall
        self.begin(scope, has_body)
        messages = self._messages(body)
        connection.on_client_gone = self._client_left
        try:
            for start, data, more in messages:
                if start is not None:
                    out = exchange.send_head(_asgi_head(start), data, end=not more)
                elif more:
                    out = exchange.send_data(data)
                else:
                    out = exchange.send_data(data) + exchange.send_end()
                if out:
                    sendall(out)
        except RequestTimeout:
            self.loop_thread.to_loop(self._cancel_task)
            raise
        finally:
            connection.on_client_gone = None
            messages.close()  # its clean-up runs now, even when a write failed

    def wsgi_iterable(self, body: Any, start_response: Callable) -> Iterator[bytes]:
        """Mounted mode: the response iterable, calling start_response on the way."""
        try:
            with contextlib.closing(self._messages(body)) as messages:
                for start, data, more in messages:
                    if start is not None:
                        head = _asgi_head(start)  # validates the status and headers
                        start_response(
                            status_text(head.code),
                            _text_headers(start.get("headers", ()), data, complete=not more),
                        )
                    if data:
                        yield data  # the server writes it before asking for more
        except RequestTimeout:
            self.loop_thread.to_loop(self._cancel_task)
            raise

    def _messages(self, body: Body) -> Generator[tuple[dict[str, Any] | None, bytes, bool], None, None]:
        """The app's response as ``(start, data, more)``; ``start`` only with the first piece.

        Resuming the generator means the piece was written: the app's send()
        is acknowledged then (backpressure).
        """
        inbox = self._inbox
        to_loop = self.loop_thread.to_loop
        start: dict[str, Any] | None = None
        started = False
        writing: asyncio.Future | None = None  # the send() waiting for its chunk to be written
        try:
            while True:
                while not inbox:
                    waiter = self._waiter = Waiter()
                    waiter.get()
                kind, payload, future = inbox.popleft()
                if kind == _START_BODY:
                    if start is not None:
                        raise ResponseError("ASGI: http.response.start sent twice")
                    start, payload = payload
                    kind = _BODY
                if kind == _BODY:
                    if start is None:
                        raise ResponseError("ASGI: http.response.body before http.response.start")
                    more = payload.get("more_body", False)
                    if not more:
                        self._response_done = True
                    writing = future
                    yield (None if started else start), payload.get("body", b""), more
                    writing = None
                    started = True
                    if future is not None:
                        to_loop(resolve_future, future, None)
                    if not more:
                        # The response is complete: the connection moves on while the
                        # task may go on (Starlette's background tasks run after this).
                        return
                elif kind == _START:
                    if start is not None:
                        raise ResponseError("ASGI: http.response.start sent twice")
                    start = payload
                elif kind == _NEED_BODY:
                    self._feed_body(body, future)
                else:  # _DONE
                    self._app_done(payload, start is not None and started)
                    return
        finally:
            # Whether the app finished or the client left: answer anything still
            # waiting, and make later messages fail fast instead of hanging.
            self._closed = True
            if not self._response_done:
                self._disconnected = True
                to_loop(self._client_gone)
            if writing is not None:  # the client went away during this write
                to_loop(fail_future, writing, ClientDisconnected("the client went away"))
            if self._watcher is not None:
                self._stop_watching()
            for kind, payload, future in inbox:
                self._late(kind, payload, future)
            inbox.clear()
            if self._pending_receive is not None:
                self._finish_receive()

    def _feed_body(self, body: Body, future: asyncio.Future) -> None:
        """The app awaits receive(): read the next piece of the body for it, now."""
        to_loop = self.loop_thread.to_loop
        if self._disconnected or self._response_done:
            to_loop(resolve_future, future, _DISCONNECT)
            return
        if not self._body_done:
            try:
                data = body.read1(_BODY_CHUNK) if hasattr(body, "read1") else body.read(_BODY_CHUNK)  # type: ignore[attr-defined]
            except OSError:
                self._disconnected = True
                to_loop(resolve_future, future, _DISCONNECT)
                raise
            more = bool(data) and not getattr(body, "done", False)
            self._body_done = not more
            to_loop(resolve_future, future, {"type": "http.request", "body": data, "more_body": more})
            return
        # The body is complete: this receive() waits for the client to go away.
        self._pending_receive = future
        self._watch_disconnect()

    def _client_left(self) -> None:
        """In the hub: the reaper found the client's side closed while the application runs."""
        self._disconnected = True
        self.loop_thread.to_loop(self._cancel_task)
        if self._pending_receive is not None:
            self._finish_receive()

    def _watch_disconnect(self) -> None:
        connection = self.connection
        if connection is None or self._watcher is not None:
            return

        def watch() -> None:
            if connection.wait_for_eof():
                self._disconnected = True
                self.loop_thread.to_loop(self._client_gone)
                self._finish_receive()

        self._watcher = gevent.spawn(watch)

    def _stop_watching(self) -> None:
        watcher = self._watcher
        if watcher is not None:
            self._watcher = None
            watcher.kill(block=False)

    def _finish_receive(self) -> None:
        future = self._pending_receive
        if future is not None:
            self._pending_receive = None
            self.loop_thread.to_loop(resolve_future, future, _DISCONNECT)

    def _describe(self) -> str:
        request = self.request
        if request is not None:
            return request_summary(request.method, request.target)  # escaped: client data
        environ = self.environ or {}
        return escape(f"{environ.get('REQUEST_METHOD')} {str(environ.get('RAW_URI'))[:200]}")

    def _app_done(self, error: BaseException | None, started: bool) -> None:
        if error is not None and not isinstance(error, ClientDisconnected):
            log.error("ASGI application error (%s)", self._describe(), exc_info=error)
        if self._response_done:
            return
        if not started:
            raise ResponseError("the ASGI application ended without sending a response")
        # The response started but did not finish: the connection cannot be reused.
        raise ClientDisconnected("the ASGI application ended in the middle of its response")


#: Marks a response start already handed to the greenlet (loop thread side).
_SENT: dict[str, Any] = {}


def _cancel(task: asyncio.Task) -> None:
    if not task.done():
        task.cancel()


def _asgi_head(start: dict[str, Any]) -> Head:
    """The response head from ``http.response.start`` (the one place both modes validate it)."""
    try:
        return Head.from_asgi(start["status"], start.get("headers", ()))
    except (KeyError, TypeError, ValueError) as exc:
        raise ResponseError(f"ASGI: invalid http.response.start: {exc!r}") from None


def _text_headers(headers: Any, first: bytes, complete: bool) -> list[tuple[str, str]]:
    """ASGI byte headers as WSGI text headers; with the whole body known, its exact length."""
    pairs = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]
    if complete and not any(name.lower() == "content-length" for name, _ in pairs):
        pairs.append(("Content-Length", str(len(first))))
    return pairs
