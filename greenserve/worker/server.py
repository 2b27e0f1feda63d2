"""The worker's server: accept loops, the bounded connection pool, graceful drain.

One accept greenlet per listener and one greenlet per connection. The pool
holds at most ``worker_connections``: when it is full, idle keep-alive
connections are closed to make room (they cost the client nothing to
reopen), and only when every connection is busy does accepting pause, so
excess clients wait in the kernel's backlog rather than being refused.
"""

from __future__ import annotations

import errno
import logging
import socket
import sys
import time
from collections.abc import Callable
from time import monotonic
from typing import Any

import gevent
from gevent.event import Event

from greenserve import __version__, hooks
from greenserve.config import Config
from greenserve.interfaces import IPostRequest, IPreRequest
from greenserve.protocol.environ import base_environ
from greenserve.protocol.events import Limits
from greenserve.protocol.parser import RequestParser, head_parser_class
from greenserve.protocol.proxy import ProxyPolicy
from greenserve.protocol.response import date_line, server_line
from greenserve.sockets import Listener
from greenserve.worker.connection import Connection
from greenserve.worker.wsgi import FileWrapper

log = logging.getLogger("greenserve.error")

#: Seconds of keep-alive idleness before a connection is parked (see Connection.park).
PARK_AFTER = 2.0

_ACCEPT_RETRY = {errno.EAGAIN, errno.ECONNABORTED, errno.EPROTO, errno.EINTR}
_ACCEPT_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class DateClock:
    """The ``Date`` header line, formatted at most once per second."""

    __slots__ = ("_line", "_second", "_time")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._time = clock
        self._second = -1
        self._line = b""

    def date_line(self) -> bytes:
        now = self._time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._line = date_line(now)
        return self._line


def build_ssl_context(config: Config) -> Any:
    """The server-side TLS context (imported here: after gevent patched ssl)."""
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.certfile, config.keyfile or None)
    if config.ca_certs:
        context.load_verify_locations(config.ca_certs)
    context.verify_mode = {
        "none": ssl.CERT_NONE,
        "optional": ssl.CERT_OPTIONAL,
        "required": ssl.CERT_REQUIRED,
    }[config.cert_reqs]
    context.set_alpn_protocols(["http/1.1"])
    return context


class WorkerServer:
    """Serves one WSGI callable on the given listeners until stopped."""

    def __init__(
        self,
        config: Config,
        app: Callable,
        listeners: list[Listener],
        *,
        multiprocess: bool = False,
        access_log: Any = None,
        ssl_context: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.app = app
        self.listeners = listeners
        self.multiprocess = multiprocess
        self.access_log = access_log
        self.ssl_context = ssl_context
        self.clock = DateClock(clock)
        self.server_line = server_line(config.server_header)
        self.root_path = config.root_path
        self.keep_alive = config.keep_alive
        self.keep_alive_enabled = config.keep_alive > 0
        self.header_timeout = config.header_timeout
        self.client_timeout = config.client_timeout
        self.limits = Limits(
            request_line=config.limit_request_line,
            fields=config.limit_request_fields,
            field_size=config.limit_request_field_size,
            body_size=config.max_body_size,
        )
        # One head parser serves every connection: parsing a head never yields.
        self._head_parser = head_parser_class(config.http)(self.limits)
        self.proxy_policy = ProxyPolicy(config.forwarded_allow_ips) if config.proxy_headers else None
        self.max_connections = config.worker_connections
        self.connections: set[Connection] = set()
        self.requests = 0
        self.stopping = False
        #: The worker record from the master (None in single-process mode), for hooks.
        self.worker: Any = None
        self.request_timeout = config.request_timeout
        self.pre_request = self.post_request = False
        #: The ASGI bridge when the application is ASGI: requests skip WSGI (see Connection).
        self.asgi = app if hasattr(app, "serve_request") else None
        self.needs_environ = access_log is not None
        self.refresh_hooks()
        #: After this many requests, on_max_requests() is called once (0: never).
        self.max_requests = 0
        self.on_max_requests: Callable[[], None] = lambda: None
        self._room = Event()
        self._room.set()
        #: The accept loop waits for a free slot: a connection going idle should say so.
        self.room_wanted = False
        self._idle_done = Event()
        self._stopped = Event()
        self._acceptors: list[Any] = []
        self._reaper: Any = None
        self.hub_loop = gevent.get_hub().loop
        self.spawn = gevent.spawn_raw
        #: Idle this long, a keep-alive connection gives up its greenlet (0: never).
        self.park_after = PARK_AFTER
        timeouts = [config.header_timeout, config.client_timeout]
        if config.keep_alive > 0:
            timeouts.append(config.keep_alive)
        if config.request_timeout > 0:
            timeouts.append(config.request_timeout)
        #: How often overdue client waits are looked for: timeouts are this precise.
        self.reap_interval = min(0.5, max(0.05, min(timeouts) / 5))
        self._gsockets: list[Any] = []
        self._server_software = f"greenserve/{__version__}"

    # -- parsers and environ -------------------------------------------------------

    def refresh_hooks(self) -> None:
        """Per-request hook events are built only when somebody subscribed to them."""
        self.pre_request = hooks.wants(IPreRequest)
        self.post_request = hooks.wants(IPostRequest)
        self.needs_environ = self.access_log is not None or self.pre_request or self.post_request

    def new_parser(self) -> RequestParser:
        return RequestParser(self._head_parser, self.limits)

    @property
    def http_backend(self) -> str:
        return str(self._head_parser.name)

    def _listener_base(self, listener: Listener) -> dict[str, Any]:
        """The environ entries shared by every request arriving on ``listener``.

        One dict per listener, not per connection: an idle keep-alive
        connection then costs no environ at all.
        """
        return base_environ(
            server_name=listener.server_name,
            server_port=listener.server_port,
            remote_addr="",
            remote_port="",
            url_scheme="https" if self.ssl_context is not None and not listener.is_unix else "http",
            root_path=self.root_path,
            server_software=self._server_software,
            multiprocess=self.multiprocess,
            extra={"wsgi.errors": sys.stderr, "wsgi.file_wrapper": FileWrapper},
        )

    # -- serving ----------------------------------------------------------------------

    def start(self) -> None:
        """Start one accept greenlet per listener (returns at once)."""
        from gevent import socket as gsocket

        for listener in self.listeners:
            std = listener.sock
            # The gevent socket takes the descriptor over; the stdlib object,
            # made before gevent patched anything, must not close it too.
            gsock = gsocket.socket(std.family, std.type, std.proto, fileno=std.detach())
            self._gsockets.append(gsock)
            base = self._listener_base(listener)
            self._acceptors.append(gevent.spawn(self._accept_loop, listener, gsock, base))
        self._reaper = gevent.spawn(self._reap)

    def _reap(self) -> None:
        """Interrupt client waits that overran their deadline (see connection.py)."""
        run_callback = gevent.get_hub().loop.run_callback
        interval = self.reap_interval
        connections = self.connections
        park_after = self.park_after
        while True:
            gevent.sleep(interval)
            now = monotonic()
            park_before = now - park_after
            for conn in connections:
                deadline = conn.deadline
                if deadline:
                    if deadline <= now:
                        run_callback(conn.expire, deadline)
                    elif park_after and conn.idle and conn.parked is None and conn.idle_since < park_before:
                        run_callback(conn.park, deadline)
                deadline = conn.request_deadline
                if deadline and deadline <= now:
                    run_callback(conn.cancel_request, deadline)

    def serve_forever(self) -> None:
        """Serve until :meth:`shutdown` (or :meth:`kill`) has finished."""
        if not self._acceptors:
            self.start()
        self._stopped.wait()

    def _accept_loop(self, listener: Listener, gsock: Any, base: dict[str, Any]) -> None:
        tcp = not listener.is_unix
        connections = self.connections
        spawn = self.spawn
        tls = self.ssl_context
        while not self.stopping:
            if len(connections) >= self.max_connections and not self._client_waiting(gsock):
                continue
            try:
                client, address = gsock.accept()
            except OSError as exc:
                if self.stopping:
                    return
                if exc.errno in _ACCEPT_RETRY:
                    continue
                if exc.errno in _ACCEPT_EXHAUSTED:
                    log.error("accept() failed: %s; retrying in 0.5 s", exc)
                    gevent.sleep(0.5)
                    continue
                raise
            if len(connections) >= self.max_connections and not self._make_room():
                client.close()  # stopping
                return
            if tcp:
                try:
                    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:  # pragma: no cover - the peer is already gone
                    pass
            conn = self._connection(listener, client, address, tls, base)
            connections.add(conn)
            conn.greenlet = spawn(conn.run)

    def _connection(
        self, listener: Listener, client: Any, address: Any, tls: Any, base: dict[str, Any]
    ) -> Connection:
        if listener.is_unix:
            remote, peer_ip = ("", ""), None
        else:
            peer_ip = str(address[0])
            remote = (peer_ip, str(address[1]))
        policy = self.proxy_policy
        proxy = policy if policy is not None and policy.trusts(peer_ip) else None
        cls = Connection
        if tls is not None and not listener.is_unix:
            client = tls.wrap_socket(client, server_side=True, do_handshake_on_connect=False)
            cls = _TLSConnection
        conn = cls(self, client, base, proxy, remote)
        if listener.wildcard:
            try:
                conn.server_name = client.getsockname()[0]
            except OSError:  # pragma: no cover - the peer is already gone
                pass
        return conn

    def _client_waiting(self, gsock: Any) -> bool:
        """Pool full: wait for a client, and leave it to another worker that has room."""
        from gevent.select import select
        from gevent.socket import wait_read

        try:
            wait_read(gsock.fileno())
        except OSError:  # the listener was closed: stopping
            return False
        gevent.sleep(0.005)  # a worker with room accepts within this
        try:
            readable, _, _ = select([gsock], [], [], 0)
        except OSError:
            return False
        return bool(readable)

    def _make_room(self) -> bool:
        """A new client is waiting and the pool is full: free one slot for it.

        The keep-alive connection idle the longest is closed (a client may
        reconnect at no cost); with none idle, wait until a connection ends or
        goes idle. Nothing is closed while no client is waiting. ``False``
        when the server stops meanwhile.
        """
        room = self._room
        while len(self.connections) >= self.max_connections:
            if self.stopping:
                return False
            room.clear()
            oldest = None
            for conn in self.connections:
                if conn.idle and (oldest is None or conn.idle_since < oldest.idle_since):
                    oldest = conn
            if oldest is not None:
                oldest.idle = False
                oldest.close_idle()  # its slot frees when it ends: connection_done sets room
                log.debug("connection pool full: closed the longest idle keep-alive connection")
            else:
                self.room_wanted = True  # woken by connection_done or wake_acceptors
            room.wait()
            self.room_wanted = False
        return True

    def wake_acceptors(self) -> None:
        self._room.set()

    def connection_done(self, conn: Connection) -> None:
        self.connections.discard(conn)
        if len(self.connections) < self.max_connections:
            self._room.set()
        if not self.connections:
            self._idle_done.set()

    # -- stopping ----------------------------------------------------------------------

    def stop_accepting(self) -> None:
        self.stopping = True
        self._room.set()
        for gsock in self._gsockets:
            try:
                gsock.close()
            except OSError:  # pragma: no cover
                pass
        for acceptor in self._acceptors:
            acceptor.kill(block=False)

    def shutdown(self, timeout: float) -> bool:
        """Graceful stop: no new connections or requests; in-flight ones get ``timeout``.

        Idle keep-alive connections are closed at once. Returns ``True`` when
        every request finished in time.
        """
        self.stop_accepting()
        for conn in list(self.connections):
            if conn.idle:
                conn.close_idle()
        finished = True
        if self.connections:
            self._idle_done.clear()
            finished = self._idle_done.wait(timeout)
            if not finished:
                log.warning(
                    "graceful timeout (%.0f s): cutting off %d connections",
                    timeout,
                    len(self.connections),
                )
        self.kill()
        return bool(finished)

    def kill(self) -> None:
        """Quick stop: cut every connection now."""
        self.stop_accepting()
        greenlets = [conn.greenlet for conn in list(self.connections) if conn.greenlet is not None]
        if greenlets:
            gevent.killall(greenlets, block=True, timeout=1.0)
        if self._reaper is not None:
            self._reaper.kill(block=False)
        self._stopped.set()


class _TLSConnection(Connection):
    """A connection whose TLS handshake runs in its own greenlet, under the head timeout."""

    __slots__ = ()
    TLS = True

    def run(self) -> None:
        self.deadline = monotonic() + self.server.header_timeout
        try:
            self.sock.do_handshake()
        except OSError as exc:
            log.debug("TLS handshake failed: %s", exc)
            try:
                self.sock.close()
            finally:
                self.deadline = 0.0
                self.server.connection_done(self)
            return
        self.deadline = 0.0
        super().run()
