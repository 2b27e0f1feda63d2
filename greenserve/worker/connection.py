"""One client connection, served by one greenlet: recv -> parser -> app -> sendall.

The greenlet moves bytes and waits; what the bytes mean is decided by the
sans-IO protocol layer: :class:`~greenserve.protocol.parser.RequestParser`
turns what the client sends into requests, and
:class:`~greenserve.protocol.exchange.Exchange` turns what the application
sends into bytes and says, after each response, whether the connection stays
open, must first discard an unread body, or closes.

A connection can also leave HTTP/1.1 (see docs/design.md, "One connection,
several protocols"):

- from its first bytes: a *preface* registered on the server (PROXY protocol,
  HTTP/2 prior knowledge) recognises them and either consumes a preamble and
  gives the rest back to HTTP/1.1, or takes the connection over;
- after a request head: an ``Upgrade`` (WebSocket) answered by the application,
  which then owns the socket through :meth:`Connection.take_over`.

Either way the connection stays in the server's pool, under its limits,
deadlines and graceful shutdown, until the protocol that holds it returns.

Timeouts are deadlines, not socket timeouts: before each wait on the client
the connection records when the wait must end (:meth:`Connection.wait_on_client`),
and the server's reaper (:meth:`WorkerServer._reap`) interrupts waits that
overrun. A gevent socket timeout arms and cancels a timer on every wait, which
costs more than parsing the request; a deadline is one attribute.

Who writes which field (everything runs in the worker's one hub thread):

- the connection's own greenlet: everything, unless listed below;
- the reaper (hub callbacks): ``deadline`` (cleared when it expires a wait),
  ``parked`` and ``greenlet`` (parking, unparking);
- the server (pool full, graceful shutdown): ``deadline`` (shortened when
  draining), ``waiting`` (cleared when it evicts the connection);
- ``wsgi.input`` (:class:`~greenserve.worker.input.Input`), in the greenlet: ``body_error``;
- the ASGI bridge, in the greenlet or a watcher greenlet: nothing; it calls
  :meth:`sendall`, :meth:`take_over` and :meth:`wait_for_eof`.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from time import monotonic, perf_counter
from typing import TYPE_CHECKING, Any, TypeVar

from gevent import GreenletExit
from gevent.socket import wait_write

from greenserve import hooks
from greenserve.errors import ClientDisconnected, ProtocolError, RequestBodyError, RequestTimeout
from greenserve.logs import escape, request_summary
from greenserve.protocol.environ import request_environ
from greenserve.protocol.events import END, Request
from greenserve.protocol.exchange import CLOSE_LINGER, DRAIN, KEEP_ALIVE, RECEIVING, SWITCHED, Exchange
from greenserve.protocol.proxy import ProxyPolicy, apply_proxy_headers
from greenserve.protocol.response import Head, ResponseError
from greenserve.protocol.websocket import INTERNAL_ERROR, HandshakeError
from greenserve.worker.input import EMPTY_INPUT, EmptyInput, Input
from greenserve.worker.websocket import (
    TakeoverSocket,
    WebSocketHandshake,
    WSGIWebSocket,
    is_websocket_request,
)
from greenserve.worker.wsgi import WSGIResponse

if TYPE_CHECKING:
    from greenserve.worker.server import WorkerServer

log = logging.getLogger("greenserve.error")

T = TypeVar("T")

RECV_SIZE = 64 * 1024
#: Unread request body the server reads and discards to keep a connection alive.
DRAIN_LIMIT = 64 * 1024
#: After an error with unread input: how long and how much to read before closing.
LINGER_SECONDS = 2.0
LINGER_BYTES = 256 * 1024
#: sendfile(2) hands the kernel at most this much at once (one wait per chunk when the socket is full).
SENDFILE_CHUNK = 1024 * 1024

# What the connection's greenlet waits for (``Connection.waiting``): the server may
# close a connection that waits for its client to make room, or when it stops.
#: Not waiting for the client: the application runs, or a response is being written.
BUSY = 0
#: The first byte of a request (the first one, or the next on a keep-alive connection).
WAIT_REQUEST = 1
#: The rest of a request head that has started, or the TLS handshake.
WAIT_HEAD = 2


class ClientTimeout(TimeoutError):
    """A wait on the client overran its deadline (raised into the waiting greenlet)."""


class _Park(BaseException):
    """Thrown into an idle connection's greenlet to end it without closing (see park)."""


class Connection:
    """A client connection. ``run`` is the body of its greenlet."""

    #: Encrypted: sends go through the TLS socket, no sendfile.
    TLS = False

    __slots__ = (
        "base",
        "body",
        "body_error",
        "deadline",
        "events",
        "exchange",
        "greenlet",
        "linger",
        "on_client_gone",
        "parked",
        "parser",
        "peer",
        "prefaced",
        "proxy",
        "proxy_header",
        "raw_send",
        "remote",
        "request_deadline",
        "request_id",
        "requests",
        "server",
        "server_name",
        "sock",
        "waiting",
        "waiting_since",
    )

    def __init__(
        self,
        server: WorkerServer,
        sock: Any,
        base: dict[str, Any],
        proxy: ProxyPolicy | None,
        peer: tuple[str, int] | None = None,
    ) -> None:
        self.server = server
        self.sock = sock
        #: The listener's constant environ entries (shared, never modified).
        self.base = base
        #: The client's address and port (ASGI's ``client``), None for a Unix socket peer.
        self.peer = peer
        #: The same as REMOTE_ADDR and REMOTE_PORT strings (("", "") for a Unix socket peer).
        self.remote = (peer[0], str(peer[1])) if peer is not None else ("", "")
        #: SERVER_NAME when the listener is a wildcard (0.0.0.0): the local address.
        self.server_name: str | None = None
        #: An io watcher that restarts the connection when its client speaks again.
        self.parked: Any = None
        #: The proxy policy when the peer is a trusted proxy (its forwarded headers apply).
        self.proxy = proxy
        #: The connection's first bytes went through the server's prefaces already.
        self.prefaced = False
        #: The PROXY protocol header the load balancer sent (--proxy-protocol), if any.
        self.proxy_header: Any = None
        #: The current request's id (--request-id), else None.
        self.request_id: str | None = None
        #: Set by a request's handler that wants to know when the client goes away while it runs
        #: (the ASGI bridge): the reaper checks long requests' sockets and calls it once.
        self.on_client_gone: Callable[[], None] | None = None
        self.parser = server.new_parser()
        self.events = self.parser.events
        self.exchange = Exchange(server.exchange_settings)
        #: What the greenlet waits for (BUSY, WAIT_REQUEST, WAIT_HEAD) and since when.
        self.waiting = BUSY
        self.waiting_since = 0.0
        #: Requests served on this connection so far.
        self.requests = 0
        self.linger = False
        self.body_error: ProtocolError | None = None
        #: The current request's wsgi.input.
        self.body: Input | EmptyInput = EMPTY_INPUT
        #: When the current wait on the client must end (monotonic); 0: not waiting.
        self.deadline = 0.0
        #: When the running request must be cancelled (--request-timeout); 0: never.
        self.request_deadline = 0.0
        self.greenlet: Any = None
        # The non-blocking send(2) of a plain gevent socket; TLS sockets go
        # through their own send, which waits for the handshake state.
        raw = None if self.TLS else getattr(sock, "_sock", None)
        self.raw_send = raw.send if raw is not None else sock.send

    # -- lifecycle -------------------------------------------------------------

    def set_remote(self, remote: tuple[str, str]) -> None:
        """The client is someone else than the socket's peer (a PROXY header, a preface).

        Sets both forms of the address (``remote`` and ``peer``): assign neither directly.
        """
        self.remote = remote
        self.peer = (remote[0], int(remote[1])) if remote[0] else None

    def run(self) -> None:
        try:
            if self._serve():
                return  # parked: the socket stays open, without a greenlet
        except (ClientDisconnected, OSError) as exc:
            log.debug("connection dropped: %s", exc)
        except GreenletExit:
            pass
        except Exception:
            log.exception("unexpected error on a connection")
        self.deadline = 0.0
        self.waiting = BUSY
        self.close()
        self.server.connection_done(self)

    def close(self) -> None:
        if self.linger:
            self._lingering_close()
        try:
            self.sock.close()
        except OSError:  # pragma: no cover
            pass

    def close_waiting(self) -> bool:
        """End a connection that waits for its client (pool full, shutdown).

        ``False`` when the client's next request has already arrived (it raced
        with this close): closing a socket with unread bytes resets it and the
        client would lose that request, so the connection's greenlet serves it
        instead (a parked one: the greenlet its watcher starts). A connection
        in the middle of a head (or a TLS handshake) is closed whatever waits.
        """
        if self.waiting == WAIT_REQUEST and self._request_waiting():
            return False
        self.waiting = BUSY  # not a candidate any more: its slot frees when it ends
        if self.parked is not None:
            self._drop_parked()
            return True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        return True

    def _request_waiting(self) -> bool:
        """Bytes from the client wait in the socket (peeked, not read: never blocks)."""
        raw = getattr(self.sock, "_sock", None)  # the non-blocking socket under gevent's
        if raw is None:
            return False
        try:
            return bool(raw.recv(1, socket.MSG_PEEK))
        except OSError:  # nothing yet (EAGAIN), or the socket is gone: close as planned
            return False

    def expire(self, deadline: float) -> None:
        """Called by the reaper in the hub: interrupt the wait if it is still the same one."""
        if self.deadline != deadline or not deadline:
            return
        self.deadline = 0.0
        metrics = self.server.metrics
        if metrics is not None:
            waiting = self.waiting
            if waiting == WAIT_REQUEST:
                metrics.timed_out("keep_alive" if self.requests else "header")
            else:
                metrics.timed_out("header" if waiting == WAIT_HEAD else "client")
        if self.parked is not None:
            self._drop_parked()  # keep-alive timeout while parked: just close
        elif self.greenlet is not None:
            self.greenlet.throw(ClientTimeout("the client took too long"))

    def wait_on_client(self, timeout: float, wait: Callable[..., T], *args: Any) -> T:
        """``wait(*args)``, which waits on the client: it must end within ``timeout`` seconds.

        The deadline protocol in one place: set the deadline the reaper
        watches, wait, clear it (the reaper throws :class:`ClientTimeout` into
        a wait that overruns).
        """
        self.deadline = monotonic() + timeout
        try:
            return wait(*args)
        finally:
            self.deadline = 0.0

    # -- parking ------------------------------------------------------------------------
    #
    # A connection idle for a while gives up its greenlet: its stack and Python
    # frames are most of what an idle connection costs. An io watcher starts a
    # fresh greenlet when the client sends its next request.

    def park(self, deadline: float) -> None:
        """Called by the reaper in the hub: park the connection if it is still idle."""
        if (
            self.waiting == WAIT_REQUEST
            and self.deadline == deadline
            and self.parked is None
            and self.greenlet is not None
        ):
            self.greenlet.throw(_Park())

    def wait_parked(self, timeout: float) -> None:
        """A new connection whose client has sent nothing yet: wait for it without a greenlet.

        Most clients send their request with the connection; the few that do
        not (a browser's speculative connection, a slow client, a flood of
        silent connections) cost a socket and a watcher until they speak, and
        are the first to go when the pool is full.
        """
        now = monotonic()
        self.waiting_since = now
        self.deadline = now + timeout
        self._park()

    def _park(self) -> None:
        """In the connection's greenlet, which then ends (or for a new connection, see wait_parked)."""
        watcher = self.server.hub_loop.io(self.sock.fileno(), 1)
        self.parked = watcher
        self.greenlet = None
        self.waiting = WAIT_REQUEST
        watcher.start(self._unpark)

    def _unpark(self) -> None:
        """In the hub: the client sent data (or closed): serve it in a new greenlet."""
        watcher = self.parked
        if watcher is None:
            return
        watcher.stop()
        self.parked = None
        self.waiting = BUSY
        self.greenlet = self.server.spawn(self.run)

    def _drop_parked(self) -> None:
        watcher = self.parked
        self.parked = None
        self.waiting = BUSY
        if watcher is not None:
            watcher.stop()
        self.deadline = 0.0
        self.close()
        self.server.connection_done(self)

    # -- other protocols ----------------------------------------------------------------

    def take_over(self) -> tuple[Any, bytes]:
        """Hand the socket to another protocol after an ``Upgrade`` (WebSockets).

        Returns the socket and the bytes already received after the request
        head. The caller answers the upgrade itself; greenserve sends nothing
        more on this connection and closes it when the caller returns.
        """
        self.exchange.switch()  # raises unless the response has not started
        self.request_deadline = 0.0  # a WebSocket lives as long as it likes
        return self.sock, self.parser.take_pending()

    def websocket_handshake(self, request: Request) -> WebSocketHandshake:
        """The WebSocket handshake of ``request``, ready to accept (raises HandshakeError, a ValueError)."""
        return WebSocketHandshake(self, request)

    def wait_for_eof(self) -> bool:
        """Block until the client sends something or closes; True when it closed.

        Used by the ASGI bridge to deliver ``http.disconnect`` while a
        streaming response runs, once the request body has been read. Data
        the client sends meanwhile is a pipelined request: it goes to the
        parser, to be answered after this response.
        """
        try:
            data = self.sock.recv(RECV_SIZE)
        except OSError:
            return True
        if not data:
            return True
        self.parser.feed(data)
        return False

    def check_client_gone(self) -> None:
        """Called by the reaper in the hub for a long request: has the client closed its side?

        A peek that never blocks: EOF (or a reset) means the client left; bytes
        waiting are a pipelined request and are left for later.
        """
        callback = self.on_client_gone
        raw = getattr(self.sock, "_sock", None)
        if callback is None or raw is None:
            return
        try:
            gone = not raw.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return
        except OSError:
            gone = True
        if gone:
            self.on_client_gone = None
            callback()

    def cancel_request(self, deadline: float) -> None:
        """Called by the reaper in the hub: cancel the request if it is still the same one."""
        if self.request_deadline == deadline and deadline and self.greenlet is not None:
            self.request_deadline = 0.0
            if self.server.metrics is not None:
                self.server.metrics.timed_out("request")
            self.greenlet.throw(RequestTimeout())

    def _lingering_close(self) -> None:
        """Stop sending, then read what the client still sends, briefly.

        Closing a socket with unread input makes the kernel send a reset, which
        can destroy the response (a 413, say) before the client reads it.
        """
        sock = self.sock
        try:
            sock.shutdown(socket.SHUT_WR)
            received = 0
            while received < LINGER_BYTES:
                data = self.wait_on_client(LINGER_SECONDS, sock.recv, RECV_SIZE)
                if not data:
                    break
                received += len(data)
        except OSError:
            pass

    def recv(self, timeout: float) -> bytes:
        """One socket read that must complete within ``timeout`` seconds."""
        return self.wait_on_client(timeout, self.sock.recv, RECV_SIZE)

    def recv_raw(self, size: int = 0) -> bytes:
        """For a preface: one read of at most ``size`` bytes (0: a full read), within the head timeout.

        On a TLS listener this reads the socket before the TLS layer: a preface
        must read no more than its own bytes.
        """
        self.waiting = WAIT_HEAD
        try:
            return self.wait_on_client(self.server.header_timeout, self.sock.recv, size or RECV_SIZE)
        finally:
            self.waiting = BUSY

    # -- the request loop ------------------------------------------------------

    def _serve(self) -> bool:
        """Serve requests until the connection ends; ``True`` when it was parked instead."""
        server = self.server
        events = self.events
        parser = self.parser
        sock = self.sock
        # After a response, a client sends its next request only once it has
        # read that response: on a plain socket, wait until it is readable
        # instead of a recv(2) that would fail with EAGAIN and raise (gevent's
        # own wait, the one its recv() makes after EAGAIN; TLS may have bytes
        # buffered in the SSL object, so it always reads first).
        wait_readable: Any = getattr(sock, "_wait", None)
        read_event = getattr(sock, "_read_event", None)
        # Once readable, the socket's own recv(2): gevent's wrapper around it costs
        # 0.15 us a request (1% of a hello request, timeit on a socketpair).
        raw = None if self.TLS or wait_readable is None else getattr(sock, "_sock", None)
        raw_recv = raw.recv if raw is not None else None
        while True:
            if not events:
                if server.stopping:
                    # Only briefly: a request that comes is answered with Connection: close.
                    timeout = server.drain_grace
                else:
                    timeout = server.keep_alive if self.requests else server.header_timeout
                now = monotonic()
                self.waiting_since = now
                self.waiting = WAIT_REQUEST
                if server.room_wanted:
                    server.wake_acceptors()  # the pool is full: this slot may be reused
                self.deadline = now + timeout
                try:
                    if self.requests and raw_recv is not None:  # (then wait_readable is too)
                        while True:
                            wait_readable(read_event)
                            try:
                                data = raw_recv(RECV_SIZE)
                                break
                            except BlockingIOError:
                                continue  # a readiness without bytes (spurious): wait again
                    else:
                        data = sock.recv(RECV_SIZE)
                except OSError:
                    self.waiting = BUSY
                    self.deadline = 0.0
                    return False  # idle timeout, eviction or reset: nothing to answer
                except _Park:
                    self._park()  # keeps the wait's deadline
                    return True
                self.waiting = BUSY
                self.deadline = 0.0
                if not data:
                    parser.feed_eof()
                    if not events:
                        return False
                else:
                    if not self.prefaced and server.prefaces:
                        rest = self._preface(data)
                        if rest is None:
                            return False  # another protocol served the connection
                        data = rest
                    parser.feed(data)
                    if not events and not self._read_head():
                        return False
            event = events.popleft()
            if isinstance(event, Request):
                if not self._handle(event):
                    return False
            elif isinstance(event, ProtocolError):
                self._reject(event)
                return False
            else:  # pragma: no cover - bodies are always consumed up to their end
                log.error("internal error: unexpected %r between requests", event)
                return False

    def _preface(self, data: bytes) -> bytes | None:
        """The first bytes of the connection go to the first preface that claims them.

        A preface returns the bytes HTTP/1.1 should parse (after a preamble it
        consumed), or None when it served the connection itself.
        """
        self.prefaced = True
        rest: bytes | None = data
        for preface in self.server.prefaces:
            rest = preface(self, data)
            if rest is None:
                return None
            data = rest
        return rest

    def _read_head(self) -> bool:
        """A head has started: the rest must arrive within the head timeout."""
        events = self.events
        deadline = monotonic() + self.server.header_timeout
        self.waiting_since = monotonic()
        while not events:
            self.waiting = WAIT_HEAD
            try:
                data = self.recv(deadline - monotonic())
            except ClientTimeout:
                self.waiting = BUSY
                self._reject(ProtocolError(408, "request head not received in time"))
                return False
            finally:
                self.waiting = BUSY
            if not data:
                return False  # the client gave up half-way (or was evicted): nobody to answer
            self.parser.feed(data)
        return True

    def _handle(self, request: Request) -> bool:
        """Run the app for ``request``; ``True`` to keep the connection open."""
        server = self.server
        exchange = self.exchange
        exchange.start(request)
        ids = server.request_ids
        if ids is not None:
            # Before anything can answer the request (a body error's 400 carries the id too).
            request_id = self.request_id = ids.assign(request.headers, self.proxy is not None)
            if ids.respond:
                exchange.id_line = ids.response_line(request_id)
        if request.has_body:
            error = self._body_error_received()
            if error is not None:
                self._reject(error)  # the body is already known to be bad: no app call
                return False
            body: Input | EmptyInput = Input(self, exchange)
        else:
            body = EMPTY_INPUT
            self.events.popleft()  # END: parsers emit it with a bodiless head
        self.body = body
        self.requests += 1
        asgi = server.asgi
        # An ASGI application is served natively, without a WSGI environ, unless
        # the access log or a hook needs one.
        environ = self._environ(request, body) if asgi is None or server.needs_environ else None
        timed = server.timed
        started = perf_counter() if timed else 0.0
        server.requests += 1
        if server.requests == server.max_requests:
            server.on_max_requests()
        if server.pre_request and environ is not None:
            hooks.notify(hooks.PreRequest(server.worker, environ))
        if server.request_timeout:
            self.request_deadline = monotonic() + server.request_timeout
        failed = False
        try:
            if asgi is not None:
                asgi.serve_request(self, request, body)
            else:
                WSGIResponse(self, exchange).run(server.app, environ)  # type: ignore[arg-type]
        except (Exception, RequestTimeout) as exc:  # noqa: BLE001 - the application's errors become a response
            self.request_deadline = 0.0  # the error response is not cancelled in turn
            failed = True  # (stays so when _failed re-raises a disconnect)
            failed = self._failed(exc)
        finally:
            self.request_deadline = 0.0
            if exchange.state == SWITCHED and environ is not None:
                # Also when the application's WebSocket error propagates: the transport must go.
                self._finish_upgrade(environ, failed)
        if server.post_request and environ is not None:
            hooks.notify(hooks.PostRequest(server.worker, environ, exchange.status))
        if environ is not None:
            del environ["greenserve.connection"]  # an environ the app keeps must not keep the socket
        if timed:  # one duration for all three: not the access log's own writing in the others'
            elapsed = perf_counter() - started
            access_log = server.access_log
            if access_log is not None:
                access_log.log(environ, exchange, elapsed)
            metrics = server.metrics
            if metrics is not None:
                metrics.request(request.method, exchange.status, elapsed, body.received, exchange.body_bytes)
            statsd = server.statsd
            if statsd is not None:
                statsd.request(exchange.status, elapsed)
        # CLOSE once another protocol took the socket over (a WebSocket): it has finished with it.
        step = exchange.finish(body.done, self.body_error is not None)
        if step == DRAIN:
            try:
                complete = body.drain(DRAIN_LIMIT)
            except RequestBodyError:
                complete = False
            step = exchange.drained(complete)
        if step == KEEP_ALIVE:
            if request.upgrade is not None:
                self.parser.resume()  # the upgrade was declined: more HTTP follows
            return True
        self.linger = step == CLOSE_LINGER
        return False

    def _finish_upgrade(self, environ: dict[str, Any], failed: bool) -> None:
        """A WSGI application took the connection over: complete its WebSocket's close, untrack it.

        A WebSocket the application left open closes with 1000, or 1011 when
        the application failed.
        """
        websocket = environ.get("wsgi.websocket")
        if isinstance(websocket, WSGIWebSocket) and websocket.transport is not None:
            if failed:
                websocket.transport.close(INTERNAL_ERROR, "internal error")
            websocket.transport.finish()
        raw = environ.get("gunicorn.socket")
        if isinstance(raw, TakeoverSocket):
            raw.finish()

    def _environ(self, request: Request, body: Input | EmptyInput) -> dict[str, Any]:
        """The WSGI environ for ``request`` on this connection."""
        environ = request_environ(self.base, request, self.server.root_path)
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = self.remote
        if self.server_name is not None:
            environ["SERVER_NAME"] = self.server_name
        if self.proxy is not None and request.forwarded:
            apply_proxy_headers(environ, self.proxy)
        environ["wsgi.input"] = body
        environ["greenserve.request"] = request
        environ["greenserve.connection"] = self
        if self.request_id is not None:
            environ["greenserve.request_id"] = self.request_id
        if request.upgrade is not None and is_websocket_request(request):
            # gevent-websocket's key (Flask-SocketIO, engineio), and the raw socket under
            # gunicorn's name for libraries that speak WebSocket themselves (simple-websocket).
            environ["wsgi.websocket"] = WSGIWebSocket(self, request, environ)
            environ["wsgi.websocket_version"] = environ.get("HTTP_SEC_WEBSOCKET_VERSION", "")
            environ["gunicorn.socket"] = TakeoverSocket(self)
        return environ

    def _failed(self, exc: BaseException) -> bool:
        """An exception escaped the application or its response: answer it if still possible.

        False when it was no failure: the end of a WebSocket the application ran itself.
        """
        if isinstance(exc, ClientDisconnected):
            raise exc
        if self.exchange.state == SWITCHED and isinstance(exc, (StopIteration, ConnectionError)):
            # How Flask-Sock and engineio end a WebSocket they ran on the raw socket
            # (gunicorn's and Werkzeug's conventions): the connection is over, not failed.
            log.debug("the application ended its WebSocket with %r", exc)
            return False
        status = 500
        error: BaseException | None = None
        if isinstance(exc, RequestTimeout):
            status, message = 504, "request cancelled after --request-timeout"
        elif isinstance(exc, RequestBodyError):
            status, message = exc.status, f"request body: {exc.reason}"
        elif isinstance(exc, ResponseError):
            message = f"invalid response from the application: {exc}"
        else:
            error, message = exc, "error handling request"
        request = self.exchange.request
        where = request_summary(request.method, request.target) if request else "?"  # escaped: client data
        if isinstance(exc, HandshakeError) and self.exchange.state == RECEIVING:
            # The application used wsgi.websocket on an upgrade request that is not a valid
            # handshake, and let the error propagate: the client's mistake (400, or 426 and
            # the version we speak), answered as plain HTTP, as a declined upgrade is.
            log.info("%s (%s)", escape(str(exc)), where)
            status, headers, body = exc.response()
            self.sendall(self.exchange.send_head(Head.from_asgi(status, headers), body, end=True))
            return False
        if error is not None:
            log.error("%s %s", message, where, exc_info=error)
        elif status >= 500:
            log.error("%s (%s)", message, where)
        else:
            log.info("%s (%s)", message, where)
        if self.exchange.state == SWITCHED:
            return True  # another protocol owned the socket: nothing HTTP can be sent
        data = self.exchange.send_error(status, "" if status >= 500 else message)
        if data:
            self.sendall(data)
        return True

    def _body_error_received(self) -> ProtocolError | None:
        """A protocol error already parsed in the current request's body, if any."""
        for event in self.events:
            if event is END:
                return None
            if isinstance(event, ProtocolError):
                return event
        return None

    def _reject(self, error: ProtocolError) -> None:
        """Answer a request that broke the protocol, then close (without the app)."""
        if error.status >= 500 or error.status == 408:
            log.info("rejected request: %s %s", error.status, escape(error.reason))
        else:
            log.debug("rejected request: %s %s", error.status, escape(error.reason))
        self.linger = True
        try:
            self.sendall(self.exchange.send_error(error.status, error.reason))
        except ClientDisconnected:
            pass

    # -- I/O for the response and wsgi.input ------------------------------------

    def sendall(self, data: bytes) -> None:
        """Send everything; one send(2) when it fits in the socket buffer.

        Each wait for the client to make room has ``client_timeout``.
        """
        try:
            sent = self.raw_send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise ClientDisconnected(f"sending the response: {exc}") from exc
        if sent < len(data):
            self._send_rest(memoryview(data)[sent:])

    def _send_rest(self, view: memoryview) -> None:
        timeout = self.server.client_timeout
        try:
            if self.TLS:
                self.wait_on_client(timeout, self.sock.sendall, view)
                return
            fileno = self.sock.fileno()
            raw_send = self.raw_send
            while view:
                self.wait_on_client(timeout, wait_write, fileno)
                try:
                    sent = raw_send(view)
                except BlockingIOError:
                    continue
                view = view[sent:]
        except OSError as exc:
            raise ClientDisconnected(f"sending the response: {exc}") from exc

    def send_continue(self) -> None:
        """``100 Continue`` when the client waits for it and the final response has not started."""
        data = self.exchange.send_continue()
        if data:
            self.sendall(data)

    def receive_body(self) -> None:
        """One more socket read for ``wsgi.input``."""
        try:
            data = self.recv(self.server.client_timeout)
        except ClientTimeout:
            # Still connected, just too slow: it gets a 408 if the app lets this propagate.
            self.body_error = ProtocolError(408, "request body not received in time")
            raise RequestBodyError(408, "request body not received in time") from None
        except OSError as exc:
            raise ClientDisconnected(f"reading the request body: {exc}") from exc
        if not data:
            self.parser.feed_eof()
            raise ClientDisconnected("the client closed the connection in the middle of the body")
        self.parser.feed(data)

    @property
    def can_sendfile(self) -> bool:
        return not self.TLS and hasattr(os, "sendfile") and self.server.config.sendfile

    def sendfile(self, fd: int, offset: int, count: int) -> int:
        """Zero-copy file transfer, waiting cooperatively when the socket is full."""
        out = self.sock.fileno()
        timeout = self.server.client_timeout
        sent = 0
        try:
            while sent < count:
                try:
                    n = os.sendfile(out, fd, offset + sent, min(count - sent, SENDFILE_CHUNK))
                except BlockingIOError:
                    self.wait_on_client(timeout, wait_write, out)
                    continue
                if n == 0:
                    break  # the file is shorter than it was
                sent += n
        except OSError as exc:
            raise ClientDisconnected(f"sending a file: {exc}") from exc
        return sent
