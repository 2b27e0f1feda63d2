"""ASGI applications as WSGI callables served by greenserve's gevent workers.

:class:`ASGIBridge` is a WSGI application. Each request's greenlet builds the
ASGI scope, starts ``app(scope, receive, send)`` as a task on the worker's
loop thread and then serves the app's messages cooperatively:

- ``receive()`` asks the greenlet for the next piece of the body, which it
  reads from ``wsgi.input`` only then (backpressure: the body is never read
  ahead of the application). A request without a body gets its one
  ``http.request`` message without a round trip.
- ``send()`` hands each message to the greenlet. The response head and the
  final body piece need no answer; an intermediate body piece is
  acknowledged only once greenserve has written it to the socket, so a slow
  client slows the application down instead of filling memory.
- Once the body is read, a ``receive()`` that waits is answered with
  ``http.disconnect`` when the client goes away (Starlette's streaming
  responses listen for exactly that).

WebSocket upgrades are handed to :mod:`greenserve.asgi.websocket`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Generator, Iterator
from typing import Any
from urllib.parse import unquote_to_bytes

import gevent
from gevent.hub import Waiter

from greenserve.asgi.loop_thread import LoopThread, get_loop_thread
from greenserve.errors import ClientDisconnected, RequestTimeout
from greenserve.logs import escape, request_summary
from greenserve.protocol.environ import split_target
from greenserve.protocol.events import Request
from greenserve.protocol.proxy import apply_proxy_headers
from greenserve.protocol.response import Head, ResponseError, status_text

log = logging.getLogger("greenserve.error")

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
_BODY_CHUNK = 64 * 1024

_SENT: dict[str, Any] = {}  # marks a response start already handed to the greenlet

# Messages to the greenlet: (kind, payload, future-to-resolve-or-None).
_START = 1
_BODY = 2
_NEED_BODY = 3
_DONE = 4
_START_BODY = 5  # the head with the first body piece: one wake-up for both


def _resolve(future: asyncio.Future, value: Any) -> None:
    """In the loop thread: complete a future unless the app already cancelled it.

    (Shared with the WebSocket session.)
    """
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def wrap_asgi2(app: Any) -> Callable:
    """ASGI 2 (``app(scope)`` returning ``async (receive, send)``) as ASGI 3."""

    async def asgi3(scope: dict, receive: Callable, send: Callable) -> None:
        instance = app(scope)
        await instance(receive, send)

    return asgi3


class ASGIBridge:
    """A WSGI callable that runs an ASGI application on the worker's loop thread.

    ``state`` is the lifespan state, copied into every request's scope.
    Instances can also be mounted inside a WSGI application (path dispatch),
    to serve Flask and FastAPI side by side in one worker.
    """

    def __init__(
        self,
        app: Callable,
        *,
        loop_thread: LoopThread | None = None,
        interface: str = "asgi3",
        ws_max_size: int = 16 * 1024 * 1024,
        ws_ping_interval: float = 20.0,
        ws_ping_timeout: float = 20.0,
    ) -> None:
        self.app = wrap_asgi2(app) if interface == "asgi2" else app
        self._loop_thread = loop_thread
        self.state: dict[str, Any] = {}
        self.ws_max_size = ws_max_size
        self.ws_ping_interval = ws_ping_interval
        self.ws_ping_timeout = ws_ping_timeout
        #: Open WebSocket sessions (greenserve.asgi.websocket.WebSocketSession).
        self.websockets: set[Any] = set()

    def close_websockets(self, code: int = 1001) -> None:
        """Graceful stop: close every open WebSocket with ``code`` (1001: going away)."""
        for session in list(self.websockets):
            session.server_closing(code)

    @property
    def loop_thread(self) -> LoopThread:
        if self._loop_thread is None:
            self._loop_thread = get_loop_thread()
        return self._loop_thread

    def serve_request(self, connection: Any, request: Request, body: Any, response: Any) -> None:
        """Serve one HTTP request for a greenserve worker, without going through WSGI."""
        scope = scope_from_request(request, connection, self.state)
        HTTPExchange(self, connection=connection, request=request).serve(
            scope, request.has_body, body, response
        )

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        request = environ.get("greenserve.request")
        if (
            request is not None
            and request.upgrade is not None
            and request.upgrade.lower() == b"websocket"
            and environ["REQUEST_METHOD"] == "GET"
        ):
            from greenserve.asgi.websocket import serve_websocket

            return serve_websocket(self, environ, start_response)
        return HTTPExchange(self, environ, start_response).run()


def scope_from_request(request: Request, connection: Any, state: dict[str, Any]) -> dict[str, Any]:
    """The HTTP scope straight from a parsed request and its connection.

    A copy of the connection's constant entries with the request's own filled
    in: building the whole scope was a tenth of the hub's work per request.
    The header names arrive lower-cased from the parser, as ASGI wants them.
    """
    scope = connection.asgi_scope
    if scope is None:
        scope = connection.asgi_scope = _connection_scope(connection)
    scope = scope.copy()
    target = request.target
    if target[:1] == b"/" and target.find(b"#") < 0:  # origin-form (find(): see split_target)
        raw_path, _, query = target.partition(b"?")
    else:
        raw_path, query = split_target(target)
    scope["http_version"] = request.version
    scope["method"] = request.method
    path = unquote_to_bytes(raw_path) if raw_path.find(b"%") >= 0 else raw_path
    scope["path"] = path.decode("utf-8", "replace")
    scope["raw_path"] = raw_path
    scope["query_string"] = query
    scope["headers"] = request.headers
    scope["state"] = state.copy()
    if connection.proxy is not None:
        _apply_proxy(scope, connection)
    return scope


def _connection_scope(connection: Any) -> dict[str, Any]:
    """The scope entries every request on ``connection`` shares (the rest are placeholders)."""
    base = connection.base
    remote_addr, remote_port = connection.remote
    return {
        "type": "http",
        "asgi": ASGI_VERSION,
        "http_version": "1.1",
        "method": "GET",
        "scheme": base["wsgi.url_scheme"],
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": base["SCRIPT_NAME"],
        "headers": [],
        "client": (remote_addr, int(remote_port)) if remote_addr else None,
        "server": (connection.server_name or base["SERVER_NAME"], int(base["SERVER_PORT"])),
        "state": {},
    }


def _apply_proxy(scope: dict[str, Any], connection: Any) -> None:
    """--forwarded-allow-ips: the same rules as for WSGI, on the few entries they read and write."""
    forwarded: dict[str, Any] = {}
    for name, value in scope["headers"]:
        key = _PROXY_HEADERS.get(name)
        if key is not None:
            text = value.decode("latin-1")
            forwarded[key] = f"{forwarded[key]}, {text}" if key in forwarded else text
    if not forwarded:
        return
    remote_addr, remote_port = connection.remote
    forwarded.update(REMOTE_ADDR=remote_addr, REMOTE_PORT=remote_port, **{"wsgi.url_scheme": scope["scheme"]})
    apply_proxy_headers(forwarded, connection.proxy)
    remote_addr = forwarded["REMOTE_ADDR"]
    scope["client"] = (remote_addr, int(forwarded["REMOTE_PORT"])) if remote_addr else None
    scope["scheme"] = forwarded["wsgi.url_scheme"]


_PROXY_HEADERS = {
    b"x-forwarded-for": "HTTP_X_FORWARDED_FOR",
    b"x-forwarded-proto": "HTTP_X_FORWARDED_PROTO",
    b"forwarded": "HTTP_FORWARDED",
}


def build_scope(environ: dict[str, Any], kind: str, state: dict[str, Any]) -> dict[str, Any]:
    """The ASGI connection scope for a request greenserve parsed."""
    request = environ.get("greenserve.request")
    if request is not None:
        headers = request.headers  # lower-cased by the parser
    else:  # mounted under another server's WSGI environ: rebuild from HTTP_* keys
        headers = [
            (key[5:].replace("_", "-").lower().encode("latin-1"), value.encode("latin-1"))
            for key, value in environ.items()
            if key.startswith("HTTP_")
        ]
        for key, name in (("CONTENT_TYPE", b"content-type"), ("CONTENT_LENGTH", b"content-length")):
            if environ.get(key):
                headers.append((name, environ[key].encode("latin-1")))
    raw_uri = environ.get("RAW_URI") or environ.get("PATH_INFO", "")
    raw_path = raw_uri.split("?", 1)[0].encode("latin-1")
    scheme = environ["wsgi.url_scheme"]
    if kind == "websocket":
        scheme = "wss" if scheme == "https" else "ws"
    remote = environ.get("REMOTE_ADDR")
    try:
        client = (remote, int(environ.get("REMOTE_PORT") or 0)) if remote else None
        server = (environ["SERVER_NAME"], int(environ["SERVER_PORT"]))
    except (KeyError, ValueError):
        client = server = None
    # ASGI's path includes root_path (unlike WSGI's PATH_INFO).
    path = environ.get("SCRIPT_NAME", "") + environ["PATH_INFO"]
    scope: dict[str, Any] = {
        "type": kind,
        "asgi": ASGI_VERSION,
        "http_version": environ["SERVER_PROTOCOL"][5:],
        "method": environ["REQUEST_METHOD"],
        "scheme": scheme,
        "path": path.encode("latin-1").decode("utf-8", "replace"),
        "raw_path": raw_path,
        "query_string": environ.get("QUERY_STRING", "").encode("latin-1"),
        "root_path": environ.get("SCRIPT_NAME", ""),
        "headers": headers,
        "client": client,
        "server": server,
        "state": dict(state),
    }
    if kind == "websocket":
        del scope["method"]
        scope["extensions"] = {"websocket.http.response": {}}
    return scope


class HTTPExchange:
    """One HTTP request/response between a greenlet and an ASGI app task."""

    __slots__ = (
        "_body_done",
        "_closed",
        "_complete",
        "_disconnected",
        "_first",
        "_inbox",
        "_pending_receive",
        "_response_done",
        "_start",
        "_task",
        "_waiter",
        "_watcher",
        "bridge",
        "connection",
        "environ",
        "loop_thread",
        "request",
        "start_response",
    )

    def __init__(
        self,
        bridge: ASGIBridge,
        environ: dict[str, Any] | None = None,
        start_response: Callable | None = None,
        *,
        connection: Any = None,
        request: Request | None = None,
    ) -> None:
        self.bridge = bridge
        #: WSGI mode (mounted in a WSGI app): the environ and start_response.
        self.environ = environ
        self.start_response = start_response
        if environ is not None:
            connection = environ.get("greenserve.connection")
            request = environ.get("greenserve.request")
        #: The greenserve connection and parsed request (None under another server).
        self.connection = connection
        self.request = request
        self.loop_thread = bridge._loop_thread or bridge.loop_thread
        self._inbox: deque = deque()
        #: Set while the greenlet waits for a message (a hub Waiter: no callback round).
        self._waiter: Waiter | None = None
        self._body_done = False
        #: The greenlet stopped serving this exchange: late messages are answered at once.
        self._closed = False
        #: The one ``http.request`` of a request without a body, answered without a round trip.
        self._first: dict[str, Any] | None = None
        self._disconnected = False
        self._response_done = False
        self._pending_receive: asyncio.Future | None = None
        self._watcher: Any = None
        self._task: asyncio.Task | None = None  # set in the loop thread
        #: The last body message was sent (set in the loop thread).
        self._complete = False
        #: http.response.start, held in the loop thread until the first body message.
        self._start: dict[str, Any] | None = None

    # -- loop thread side (the app's receive and send) ---------------------------------

    def _post(self, kind: int, payload: Any, future: asyncio.Future | None) -> None:
        """In the loop thread: give a message to the greenlet."""
        self.loop_thread.to_hub(self._deliver, kind, payload, future)

    def _deliver(self, kind: int, payload: Any, future: asyncio.Future | None) -> None:
        """In the hub: queue the message and wake the greenlet."""
        if self._closed:
            # After the response: messages are ignored, but an error is still an error.
            if kind == _DONE and payload is not None and not isinstance(payload, ClientDisconnected):
                log.error(
                    "ASGI application error after its response (%s)", self._describe(), exc_info=payload
                )
            if future is not None:
                answer = {"type": "http.disconnect"} if kind == _NEED_BODY else None
                self.loop_thread.to_loop(_resolve, future, answer)
            return
        self._inbox.append((kind, payload, future))
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.switch(None)  # straight into the waiting greenlet, from the hub

    async def _receive(self) -> dict[str, Any]:
        first = self._first
        if first is not None:
            self._first = None
            return first
        if self._disconnected or self._response_done:
            return {"type": "http.disconnect"}
        future = asyncio.get_running_loop().create_future()
        self._post(_NEED_BODY, None, future)
        return await future

    async def _send(self, message: dict[str, Any]) -> None:
        if self._disconnected:
            raise ClientDisconnected("the client went away")
        kind = message.get("type")
        if kind == "http.response.start":
            if self._start is not None:
                raise RuntimeError("ASGI: http.response.start sent twice")
            self._start = message  # crosses with the first body message: one wake-up
        elif kind == "http.response.body":
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

    def _start_task(self, scope: dict[str, Any]) -> None:
        """In the loop thread: run the application for this request."""
        # Named: Python 3.11 formats a "Task-<n>" name for every unnamed task.
        self._task = asyncio.get_running_loop().create_task(self._run_app(scope), name="greenserve.http")

    async def _run_app(self, scope: dict[str, Any]) -> None:
        # Ends the exchange itself: cheaper than a done callback (one handle less per request).
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

    def _cancel_task(self) -> None:
        """In the loop thread: --request-timeout gave up on this request."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()

    def _app_ended(self, error: BaseException | None) -> None:
        start = self._start
        if start is not None and start is not _SENT:
            self._start = _SENT
            self._post(_START, start, None)  # a head with no body message
        if error is None and self._complete:
            return  # the response is complete and the app ended cleanly: nothing to say
        self._post(_DONE, error, None)

    # -- greenlet side -------------------------------------------------------------------

    def run(self) -> Iterator[bytes]:
        """WSGI mode: the response iterable, calling start_response on the way."""
        environ = self.environ
        assert environ is not None
        request = self.request
        has_body = request.has_body if request is not None else bool(environ.get("CONTENT_LENGTH"))
        self._begin_task(build_scope(environ, "http", self.bridge.state), has_body)
        return self._wsgi_iterable(environ["wsgi.input"])

    def serve(self, scope: dict[str, Any], has_body: bool, body: Any, response: Any) -> None:
        """Native mode, inside a greenserve worker: write straight through ``response``.

        No WSGI environ, no start_response and no str headers: the scope comes
        from the parsed request and the head from the app's byte headers.
        """
        self._begin_task(scope, has_body)
        messages = self._messages(body)
        try:
            for start, data, more in messages:
                if start is not None:
                    response.head = _asgi_head(start, data, more)
                response.write(data)
            response.finish()
        except RequestTimeout:
            self.loop_thread.to_loop(self._cancel_task)
            raise
        finally:
            messages.close()  # its clean-up runs now, even when a write failed

    def _begin_task(self, scope: dict[str, Any], has_body: bool) -> None:
        if not has_body:
            self._first = {"type": "http.request", "body": b"", "more_body": False}
            self._body_done = True
        self.loop_thread.to_loop(self._start_task, scope)

    def _wsgi_iterable(self, body: Any) -> Iterator[bytes]:
        try:
            with contextlib.closing(self._messages(body)) as messages:
                for start, data, more in messages:
                    if start is not None:
                        self._begin(start, data, more)
                    if data:
                        yield data  # greenserve writes it before asking for more
        except RequestTimeout:
            self.loop_thread.to_loop(self._cancel_task)
            raise

    def _messages(self, body: Any) -> Generator[tuple[dict[str, Any] | None, bytes, bool], None, None]:
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
                        to_loop(_resolve, future, None)
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
            if writing is not None:  # the client went away during this write
                to_loop(_fail, writing, ClientDisconnected("the client went away"))
            if self._watcher is not None:
                self._stop_watching()
            for kind, payload, future in inbox:
                if future is not None:
                    to_loop(_resolve, future, {"type": "http.disconnect"} if kind == _NEED_BODY else None)
                elif kind == _DONE and payload is not None and not isinstance(payload, ClientDisconnected):
                    log.error("ASGI application error (%s)", self._describe(), exc_info=payload)
            inbox.clear()
            if self._pending_receive is not None:
                self._finish_receive()

    def _begin(self, start: dict[str, Any], first: bytes, more: bool) -> None:
        """WSGI mode: call start_response from ``http.response.start``."""
        try:
            status = int(start["status"])
            headers = [
                (name.decode("latin-1"), value.decode("latin-1")) for name, value in start.get("headers", ())
            ]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ResponseError(f"ASGI: invalid http.response.start: {exc!r}") from None
        if not more and not any(name.lower() == "content-length" for name, _ in headers):
            headers.append(("Content-Length", str(len(first))))  # the whole body is known
        assert self.start_response is not None
        self.start_response(status_text(status), headers)

    def _feed_body(self, body: Any, future: asyncio.Future) -> None:
        """The app awaits receive(): read the next piece of the body for it, now."""
        to_loop = self.loop_thread.to_loop
        if self._disconnected or self._response_done:
            to_loop(_resolve, future, {"type": "http.disconnect"})
            return
        if not self._body_done:
            try:
                data = body.read1(_BODY_CHUNK) if hasattr(body, "read1") else body.read(_BODY_CHUNK)
            except OSError:
                self._disconnected = True
                to_loop(_resolve, future, {"type": "http.disconnect"})
                raise
            more = bool(data) and not getattr(body, "done", False)
            self._body_done = not more
            to_loop(_resolve, future, {"type": "http.request", "body": data, "more_body": more})
            return
        # The body is complete: this receive() waits for the client to go away.
        self._pending_receive = future
        self._watch_disconnect()

    def _watch_disconnect(self) -> None:
        connection = self.connection
        if connection is None or self._watcher is not None:
            return

        def watch() -> None:
            if connection.wait_for_eof():
                self._disconnected = True
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
            self.loop_thread.to_loop(_resolve, future, {"type": "http.disconnect"})

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


def _asgi_head(start: dict[str, Any], first: bytes, more: bool) -> Head:
    """Native mode: the response head straight from ``http.response.start``."""
    try:
        head = Head.from_asgi(int(start["status"]), start.get("headers", ()))
    except (KeyError, TypeError, ValueError) as exc:
        raise ResponseError(f"ASGI: invalid http.response.start: {exc!r}") from None
    if not more and head.content_length is None and head.code not in (204, 304):
        head.content_length = len(first)  # the whole body is known
    return head
