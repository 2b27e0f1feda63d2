"""One client connection, served by one greenlet: recv -> parser -> app -> sendall.

Keep-alive, pipelining (requests answered strictly in order, the parser never
reads more than one socket buffer ahead), the client timeouts, draining of
unread bodies, and a lingering close so a client that is still sending gets
to read the error it was sent.

Timeouts are deadlines, not socket timeouts: before each wait on the client
the connection records when the wait must end, and the server's reaper
(:meth:`WorkerServer._reap`) interrupts waits that overrun. A gevent socket
timeout arms and cancels a timer on every wait, which costs more than
parsing the request; a deadline is one attribute.
"""

from __future__ import annotations

import logging
import os
import socket
from time import monotonic, perf_counter
from typing import TYPE_CHECKING, Any

from gevent import GreenletExit
from gevent.socket import wait_write

from greenserve import hooks
from greenserve.errors import ClientDisconnected, ProtocolError, RequestBodyError, RequestTimeout
from greenserve.logs import escape
from greenserve.protocol.environ import request_environ
from greenserve.protocol.events import END, Request
from greenserve.protocol.proxy import ProxyPolicy, apply_proxy_headers
from greenserve.protocol.response import CONTINUE, error_response
from greenserve.worker.input import EMPTY_INPUT, EmptyInput, Input
from greenserve.worker.wsgi import WSGIResponse

if TYPE_CHECKING:
    from greenserve.worker.server import WorkerServer

log = logging.getLogger("greenserve.error")

RECV_SIZE = 64 * 1024
#: Unread request body the server reads and discards to keep a connection alive.
DRAIN_LIMIT = 64 * 1024
#: After an error with unread input: how long and how much to read before closing.
LINGER_SECONDS = 2.0
LINGER_BYTES = 256 * 1024
_SENDFILE_CHUNK = 1024 * 1024


class ClientTimeout(TimeoutError):
    """A wait on the client overran its deadline (raised into the waiting greenlet)."""


class _Park(BaseException):
    """Thrown into an idle connection's greenlet to end it without closing (see park)."""


class Connection:
    """A client connection. ``run`` is the body of its greenlet."""

    #: Encrypted: sends go through the TLS socket, no sendfile.
    TLS = False

    __slots__ = (
        "asgi_scope",
        "base",
        "body",
        "body_error",
        "deadline",
        "events",
        "greenlet",
        "idle",
        "idle_since",
        "linger",
        "parked",
        "parser",
        "proxy",
        "raw_send",
        "remote",
        "request_deadline",
        "response",
        "server",
        "server_name",
        "sock",
    )

    def __init__(
        self,
        server: WorkerServer,
        sock: Any,
        base: dict[str, Any],
        proxy: ProxyPolicy | None,
        remote: tuple[str, str] = ("", ""),
    ) -> None:
        self.server = server
        self.sock = sock
        #: The listener's constant environ entries (shared, never modified).
        self.base = base
        #: REMOTE_ADDR and REMOTE_PORT.
        self.remote = remote
        #: SERVER_NAME when the listener is a wildcard (0.0.0.0): the local address.
        self.server_name: str | None = None
        #: The ASGI scope entries that are the same for every request on this
        #: connection (made by the ASGI bridge on the first one).
        self.asgi_scope: dict[str, Any] | None = None
        #: An io watcher that restarts the connection when its client speaks again.
        self.parked: Any = None
        self.idle_since = 0.0
        #: The proxy policy when the peer is a trusted proxy (its forwarded headers apply).
        self.proxy = proxy
        self.parser = server.new_parser()
        self.events = self.parser.events
        #: Waiting for the first byte of a new request: may be closed to make room.
        self.idle = False
        self.linger = False
        self.body_error: ProtocolError | None = None
        self.response: WSGIResponse | None = None
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
        self.close()
        self.server.connection_done(self)

    def close(self) -> None:
        if self.linger:
            self._lingering_close()
        try:
            self.sock.close()
        except OSError:  # pragma: no cover
            pass

    def close_idle(self) -> None:
        """End an idle connection: wake its wait with EOF, or drop it if parked.

        Unless the client's next request has already arrived (it raced with
        this close): closing a socket with unread bytes resets it, and the
        client would lose that request. The connection's greenlet serves it
        instead (a parked one: the greenlet its watcher starts), with
        ``Connection: close`` when the server is stopping.
        """
        if self._request_waiting():
            return
        if self.parked is not None:
            self._drop_parked()
            return
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

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
        if self.parked is not None:
            self._drop_parked()  # keep-alive timeout while parked: just close
        elif self.greenlet is not None:
            self.greenlet.throw(ClientTimeout("the client took too long"))

    # -- parking ------------------------------------------------------------------------
    #
    # A keep-alive connection idle for a while gives up its greenlet: its stack
    # and Python frames are most of what an idle connection costs. An io
    # watcher starts a fresh greenlet when the client sends its next request.

    def park(self, deadline: float) -> None:
        """Called by the reaper in the hub: park the connection if it is still idle."""
        if self.idle and self.deadline == deadline and self.parked is None and self.greenlet is not None:
            self.greenlet.throw(_Park())

    def _park(self) -> None:
        """In the connection's greenlet, which then ends."""
        watcher = self.server.hub_loop.io(self.sock.fileno(), 1)
        self.parked = watcher
        self.greenlet = None
        self.idle = True
        watcher.start(self._unpark)

    def _unpark(self) -> None:
        """In the hub: the client sent data (or closed): serve it in a new greenlet."""
        watcher = self.parked
        if watcher is None:
            return
        watcher.stop()
        self.parked = None
        self.idle = False
        self.greenlet = self.server.spawn(self.run)

    def _drop_parked(self) -> None:
        watcher = self.parked
        self.parked = None
        self.idle = False
        if watcher is not None:
            watcher.stop()
        self.deadline = 0.0
        self.close()
        self.server.connection_done(self)

    def take_over(self) -> tuple[Any, bytes]:
        """Hand the socket to another protocol after an ``Upgrade`` (WebSockets).

        Returns the socket and the bytes already received after the request
        head. The caller answers the upgrade itself; greenserve sends nothing
        more on this connection and closes it when the application returns.
        """
        response = self.response
        if response is None or response.headers_sent:
            raise RuntimeError("take_over() needs an upgrade request whose response has not started")
        response.upgraded = True
        response.headers_sent = True
        response.status = 101
        self.request_deadline = 0.0  # a WebSocket lives as long as it likes
        return self.sock, self.parser.take_pending()

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

    def cancel_request(self, deadline: float) -> None:
        """Called by the reaper in the hub: cancel the request if it is still the same one."""
        if self.request_deadline == deadline and deadline and self.greenlet is not None:
            self.request_deadline = 0.0
            self.greenlet.throw(RequestTimeout())

    def _lingering_close(self) -> None:
        """Stop sending, then read what the client still sends, briefly.

        Closing a socket with unread input makes the kernel send a reset, which
        can destroy the response (a 413, say) before the client reads it.
        """
        sock = self.sock
        try:
            sock.shutdown(socket.SHUT_WR)
            self.deadline = monotonic() + LINGER_SECONDS
            received = 0
            while received < LINGER_BYTES:
                data = sock.recv(RECV_SIZE)
                if not data:
                    break
                received += len(data)
        except OSError:
            pass
        finally:
            self.deadline = 0.0

    def recv(self, timeout: float) -> bytes:
        """One socket read that must complete within ``timeout`` seconds."""
        self.deadline = monotonic() + timeout
        try:
            return self.sock.recv(RECV_SIZE)
        finally:
            self.deadline = 0.0

    # -- the request loop ------------------------------------------------------

    def _serve(self) -> bool:
        """Serve requests until the connection ends; ``True`` when it was parked instead."""
        server = self.server
        events = self.events
        parser = self.parser
        sock = self.sock
        # A new connection gets the head timeout for its first request, then
        # the keep-alive timeout between requests.
        idle_timeout = server.header_timeout
        between_requests = False
        # After a response, a client sends its next request only once it has
        # read that response: on a plain socket, wait until it is readable
        # instead of a recv(2) that would fail with EAGAIN and raise (gevent's
        # own wait, the one its recv() makes after EAGAIN; TLS may have bytes
        # buffered in the SSL object, so it always reads first).
        wait_readable = None if self.TLS else getattr(sock, "_wait", None)
        read_event = getattr(sock, "_read_event", None)
        while True:
            if not events:
                if server.stopping and not self._request_waiting():
                    return False  # a request already sent is served (see close_idle)
                # Idle means between two requests: a new connection's first
                # request is on its way and must not be cut (shutdown, full pool).
                self.idle = between_requests
                if between_requests and server.room_wanted:
                    server.wake_acceptors()  # the pool is full: this idle slot can be reused
                now = monotonic()
                self.idle_since = now
                self.deadline = now + idle_timeout
                try:
                    if between_requests and wait_readable is not None:
                        wait_readable(read_event)
                    data = sock.recv(RECV_SIZE)
                except OSError:
                    self.idle = False
                    self.deadline = 0.0
                    return False  # idle timeout or reset: nothing to answer
                except _Park:
                    self._park()  # keeps idle and the keep-alive deadline
                    return True
                self.idle = False
                self.deadline = 0.0
                if not data:
                    parser.feed_eof()
                    if not events:
                        return False
                else:
                    parser.feed(data)
                    if not events and not self._read_head():
                        return False
            event = events.popleft()
            if event.__class__ is Request:
                if not self._handle(event):
                    return False
                idle_timeout = server.keep_alive
                between_requests = True
            elif isinstance(event, ProtocolError):
                self._reject(event)
                return False
            else:  # pragma: no cover - bodies are always consumed up to their end
                log.error("internal error: unexpected %r between requests", event)
                return False

    def _read_head(self) -> bool:
        """A head has started: the rest must arrive within the head timeout."""
        events = self.events
        deadline = monotonic() + self.server.header_timeout
        while not events:
            try:
                data = self.recv(deadline - monotonic())
            except ClientTimeout:
                self._reject(ProtocolError(408, "request head not received in time"))
                return False
            if not data:
                return False  # the client gave up half-way: nobody to answer
            self.parser.feed(data)
        return True

    def _handle(self, request: Request) -> bool:
        """Run the app for ``request``; ``True`` to keep the connection open."""
        server = self.server
        keep_alive = request.keep_alive and server.keep_alive_enabled and not server.stopping
        if request.has_body:
            error = self._body_error_received()
            if error is not None:
                self._reject(error)  # the body is already known to be bad: no app call
                return False
            body: Input | EmptyInput = Input(self, request.expect_continue)
        else:
            body = EMPTY_INPUT
            self.events.popleft()  # END: parsers emit it with a bodiless head
        self.body = body
        # An ASGI application is served natively, without a WSGI environ, unless
        # the access log or a hook needs one (or a WebSocket upgrade is asked for).
        asgi = server.asgi if request.upgrade is None else None
        environ = self._environ(request, body) if asgi is None or server.needs_environ else None
        response = WSGIResponse(self, request, keep_alive)
        self.response = response
        access_log = server.access_log
        started = perf_counter() if access_log is not None else 0.0
        server.requests += 1
        if server.requests == server.max_requests:
            server.on_max_requests()
        if server.pre_request and environ is not None:
            hooks.notify(hooks.PreRequest(server.worker, environ))
        if server.request_timeout:
            self.request_deadline = monotonic() + server.request_timeout
            try:
                self._respond(response, request, body, environ, asgi)
            except RequestTimeout:
                response.timed_out()
            finally:
                self.request_deadline = 0.0
        else:
            self._respond(response, request, body, environ, asgi)
        if server.post_request and environ is not None:
            hooks.notify(hooks.PostRequest(server.worker, environ, response.status))
        if environ is not None:
            del environ["greenserve.connection"]  # an environ the app keeps must not keep the socket
        if response.upgraded:
            if access_log is not None:
                access_log.log(environ, response, perf_counter() - started)
            self.response = None
            return False  # the socket now belongs to another protocol (WebSocket)
        keep_alive = response.keep_alive
        if not body.done:
            if not keep_alive or body.continue_pending or self.body_error is not None:
                # The client may never send the body (no 100 Continue) or it
                # is broken: do not read it, close instead.
                keep_alive = False
            else:
                try:
                    keep_alive = body.drain(DRAIN_LIMIT)
                except RequestBodyError:
                    keep_alive = False
            self.linger = not keep_alive and not body.continue_pending
        if self.body_error is not None:
            keep_alive = False
        if access_log is not None:
            access_log.log(environ, response, perf_counter() - started)
        self.response = None
        if keep_alive and request.upgrade is not None:
            self.parser.resume()  # the upgrade was declined: more HTTP follows
        return keep_alive

    def _environ(self, request: Request, body: Input | EmptyInput) -> dict[str, Any]:
        """The WSGI environ for ``request`` on this connection."""
        environ = request_environ(self.base, request, self.server.root_path)
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = self.remote
        if self.server_name is not None:
            environ["SERVER_NAME"] = self.server_name
        if self.proxy is not None:
            apply_proxy_headers(environ, self.proxy)
        environ["wsgi.input"] = body
        environ["greenserve.request"] = request
        environ["greenserve.connection"] = self
        return environ

    def _respond(
        self,
        response: WSGIResponse,
        request: Request,
        body: Input | EmptyInput,
        environ: dict[str, Any] | None,
        asgi: Any,
    ) -> None:
        if asgi is not None:
            response.run_asgi(asgi, request, body)
        else:
            response.run(self.server.app, environ)  # type: ignore[arg-type]

    def _body_error_received(self) -> ProtocolError | None:
        """A protocol error already parsed in the current request's body, if any."""
        for event in self.events:
            if event is END:
                return None
            if event.__class__ is ProtocolError:
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
            self.send_error(error.status, error.reason)
        except ClientDisconnected:
            pass

    # -- I/O for the response and wsgi.input ------------------------------------

    def send_error(self, status: int, detail: str, response: WSGIResponse | None = None) -> None:
        server = self.server
        data = error_response(status, server.clock.date_line(), server.server_line, detail)
        if response is not None:
            response.body_bytes = len(data) - data.index(b"\r\n\r\n") - 4
        self.sendall(data)

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
        if self.TLS:
            self.deadline = monotonic() + timeout
            try:
                self.sock.sendall(view)
            except OSError as exc:
                raise ClientDisconnected(f"sending the response: {exc}") from exc
            finally:
                self.deadline = 0.0
            return
        fileno = self.sock.fileno()
        raw_send = self.raw_send
        while view:
            self.deadline = monotonic() + timeout
            try:
                wait_write(fileno)
                sent = raw_send(view)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise ClientDisconnected(f"sending the response: {exc}") from exc
            finally:
                self.deadline = 0.0
            view = view[sent:]

    @property
    def awaiting_continue(self) -> bool:
        """The client sent ``Expect: 100-continue`` and still waits for the 100."""
        return self.body.continue_pending

    def send_continue(self) -> None:
        """``100 Continue``, unless the final response has already started."""
        response = self.response
        if response is not None and not response.headers_sent:
            self.sendall(CONTINUE)

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
        return not self.TLS and hasattr(os, "sendfile")

    def sendfile(self, fd: int, offset: int, count: int) -> int:
        """Zero-copy file transfer, waiting cooperatively when the socket is full."""
        out = self.sock.fileno()
        timeout = self.server.client_timeout
        sent = 0
        while sent < count:
            try:
                n = os.sendfile(out, fd, offset + sent, min(count - sent, _SENDFILE_CHUNK))
            except BlockingIOError:
                self.deadline = monotonic() + timeout
                try:
                    wait_write(out)
                except OSError as exc:
                    raise ClientDisconnected(f"sending a file: {exc}") from exc
                finally:
                    self.deadline = 0.0
                continue
            except OSError as exc:
                raise ClientDisconnected(f"sending a file: {exc}") from exc
            if n == 0:
                break  # the file is shorter than it was
            sent += n
        return sent
