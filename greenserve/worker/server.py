"""The worker's server: accept loops, the bounded connection pool, graceful drain.

One accept greenlet per listener and one greenlet per connection. The pool
holds at most ``worker_connections``. When it is full and a client waits,
connections that wait on their client make room: first those that have not
sent a whole request yet after a short grace (silent or slow clients cannot
hold the pool), then idle keep-alive connections (they cost the client
nothing to reopen); only when every connection is busy does accepting pause,
so excess clients wait in the kernel's backlog rather than being refused.

Workers sharing a listening socket share its clients evenly: a worker leaves
a waiting client, for a few milliseconds, to a less loaded worker (see
:class:`~greenserve.workerlink.LoadBoard` and docs/design.md).
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
from gevent import monkey
from gevent.event import Event

from greenserve import __version__, hooks
from greenserve.config import Config
from greenserve.interfaces import IPostRequest, IPreRequest
from greenserve.metrics import WorkerMetrics
from greenserve.protocol.environ import base_environ
from greenserve.protocol.events import Limits
from greenserve.protocol.exchange import ExchangeSettings
from greenserve.protocol.parser import RequestParser, head_parser_class
from greenserve.protocol.proxy import ProxyPolicy
from greenserve.protocol.request_id import RequestIds
from greenserve.protocol.response import date_line, server_line
from greenserve.sockets import Listener, stop_queueing
from greenserve.statsd import Statsd
from greenserve.worker.connection import BUSY, WAIT_HEAD, WAIT_REQUEST, Connection
from greenserve.worker.tls import TLSConnection
from greenserve.worker.websocket import WebSocketSettings
from greenserve.worker.wsgi import FileWrapper
from greenserve.workerlink import LoadBoard

log = logging.getLogger("greenserve.error")

#: Seconds of idleness before a connection waiting for a request is parked (see Connection.park).
PARK_AFTER = 2.0
#: A connection that has sent no complete request yet can be evicted (pool full) after this long.
#: Long enough for a real client's request to follow its connection (it normally
#: arrives with it), short enough that thousands of silent ones cycle quickly.
SILENT_GRACE = 0.05
#: Silent connections closed in one pass when the pool is full (each pass scans the pool once).
EVICT_BATCH = 32
#: When a worker stops, a keep-alive connection idle this long is closed; one less idle waits
#: this long for its next request, answered with Connection: close (a client that is sending
#: just then must not get a reset).
DRAIN_GRACE = 1.0
#: A request running this long has its client's socket checked on each reaper pass: did it leave?
WATCH_AFTER = 0.5
#: How long a worker leaves a waiting client to a less loaded worker before it takes it itself.
ACCEPT_DEFER = 0.02
_DEFER_STEP = 0.001
#: Clients accepted back to back before the accept loop lets the other greenlets run.
_ACCEPT_BATCH = 64

#: The blocking select(2), even once gevent patched select: used with a zero timeout only.
_poll_readable = monkey.get_original("select", "select")

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
        board: LoadBoard | None = None,
        board_slot: int = -1,
        metrics: WorkerMetrics | None = None,
        statsd: Statsd | None = None,
    ) -> None:
        self.config = config
        self.app = app
        self.listeners = listeners
        self.multiprocess = multiprocess
        self.access_log = access_log
        #: The worker's TLS (a :class:`~greenserve.worker.tls.ServerTLS`), None without --certfile.
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
        self.proxy_policy = (
            ProxyPolicy(
                config.forwarded_allow_ips,
                trust_unix=config.trust_unix_peers,
                forwarded_host=config.forwarded_host,
                forwarded_port=config.forwarded_port,
                forwarded_prefix=config.forwarded_prefix,
            )
            if config.proxy_headers
            else None
        )
        self.max_connections = config.worker_connections
        self.connections: set[Connection] = set()
        self.requests = 0
        self.stopping = False
        ids = None
        if config.request_id:
            ids = RequestIds(config.request_id_header, respond=config.request_id_response)
        #: --request-id: how each request gets its id (None: off, requests pay one check).
        self.request_ids = ids
        #: What every connection's exchange needs from the server (draining flips on stop).
        self.exchange_settings = ExchangeSettings(
            self.clock.date_line,
            self.server_line,
            keep_alive=self.keep_alive_enabled,
            id_header=ids.name if ids is not None and ids.respond else b"",
        )
        #: Protocols that may claim a new connection from its first bytes (see Connection._preface):
        #: callables ``(connection, first_bytes) -> bytes for HTTP/1.1, or None``.
        self.prefaces: tuple[Callable[[Connection, bytes], bytes | None], ...] = ()
        if config.proxy_protocol != "off":
            from greenserve.worker.proxy_preface import ProxyProtocolPreface

            allow = ProxyPolicy(config.proxy_allow_ips, trust_unix=config.trust_unix_peers)
            self.prefaces = (ProxyProtocolPreface(config.proxy_protocol, allow, self.proxy_policy),)
        self.drain_grace = min(DRAIN_GRACE, config.graceful_timeout)
        #: This process alone holds the listeners (single-process mode): quiesce them on stop.
        self.sole_listener = False
        #: Every open WebSocket (transports and raw taken-over sockets): 1001 when stopping.
        self.websockets: set[Any] = set()
        self.websocket_settings = WebSocketSettings(
            max_size=config.ws_max_size,
            ping_interval=config.ws_ping_interval,
            ping_timeout=config.ws_ping_timeout,
            per_message_deflate=config.ws_per_message_deflate,
            send_timeout=config.client_timeout,
        )
        #: Where this worker counts requests, timeouts, evictions for --metrics-bind (None: off).
        self.metrics = metrics
        #: Where this worker sends gunicorn's per-request statsd metrics (None: --statsd-host is off).
        self.statsd = statsd
        #: Whether anything takes each request's duration (access log, metrics, statsd): when
        #: nothing does, a request pays this one check instead of three.
        self.timed = access_log is not None or metrics is not None or statsd is not None
        #: Where this worker tells its siblings how many connections it holds (None: alone).
        self.board = board
        self.board_slot = board_slot
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
        #: Other greenlets of the server's own (metrics), killed when it stops.
        self._greenlets: list[Any] = []
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
        #: (listener, gevent socket, environ base) for each listener being served.
        self._listening: list[tuple[Listener, Any, dict[str, Any]]] = []
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
            # accept() raises instead of waiting: the accept loop waits itself, and
            # _take_queued stops at EAGAIN (even when the stop comes before the loop ever ran).
            gsock.setblocking(False)
            base = self._listener_base(listener)
            self._listening.append((listener, gsock, base))
            self._acceptors.append(gevent.spawn(self._accept_loop, listener, gsock, base))
        self._reaper = gevent.spawn(self._reap)
        if self.metrics is not None:
            self._greenlets.append(gevent.spawn(self._measure, self.metrics))
        if self.board is not None:
            self.board.publish(self.board_slot, len(self.connections))  # accepting from now on

    def _reap(self) -> None:
        """Interrupt client waits that overran their deadline (see connection.py); park idle ones."""
        run_callback = gevent.get_hub().loop.run_callback
        interval = self.reap_interval
        connections = self.connections
        park_after = self.park_after
        while True:
            gevent.sleep(interval)
            now = monotonic()
            park_before = now - park_after
            watch_before = now - WATCH_AFTER
            for conn in connections:
                deadline = conn.deadline
                if deadline:
                    if deadline <= now:
                        run_callback(conn.expire, deadline)
                    elif (
                        park_after
                        and conn.waiting == WAIT_REQUEST
                        and conn.parked is None
                        and conn.waiting_since < park_before
                    ):
                        run_callback(conn.park, deadline)
                deadline = conn.request_deadline
                if deadline and deadline <= now:
                    run_callback(conn.cancel_request, deadline)
                if conn.on_client_gone is not None and conn.waiting_since < watch_before:
                    run_callback(conn.check_client_gone)

    def _measure(self, metrics: WorkerMetrics) -> None:
        """Every 0.25 s: the event loop's lag, and the request counters published; every second, gauges."""
        interval = 0.25
        rounds = 0
        self.publish_gauges()  # a scrape right after boot sees the pool's limit, not 0
        while True:
            before = monotonic()
            gevent.sleep(interval)
            metrics.lag(max(0.0, monotonic() - before - interval))
            metrics.publish()
            rounds += 1
            if rounds % 4 == 0:
                self.publish_gauges()

    def publish_gauges(self) -> None:
        metrics = self.metrics
        if metrics is None:
            return
        connections = self.connections
        parked = sum(1 for conn in connections if conn.parked is not None)
        busy = sum(1 for conn in connections if conn.waiting == BUSY and conn.parked is None)
        metrics.gauges(len(connections), parked, busy, len(self.websockets), self.max_connections)

    def serve_forever(self) -> None:
        """Serve until :meth:`shutdown` (or :meth:`kill`) has finished."""
        if not self._acceptors:
            self.start()
        self._stopped.wait()
        if self.metrics is not None:
            self.metrics.publish()  # the last requests' counts, before the worker exits

    def _accept_loop(self, listener: Listener, gsock: Any, base: dict[str, Any]) -> None:
        from gevent.socket import wait_read

        tcp = not listener.is_unix
        connections = self.connections
        tls = self.ssl_context
        fileno = gsock.fileno()
        # Workers sharing this socket share its clients (their own --reuse-port sockets they don't).
        board = self.board if self.board is not None and not listener.per_worker else None
        accepted = 0
        while not self.stopping:
            # Accept without waiting first when a client is already there (bursts
            # go back to back); wait for one when there is none, or when this
            # worker may have to leave it to another or make room for it.
            if (len(connections) >= self.max_connections) or (
                board is not None and board.fewest_elsewhere(self.board_slot) < len(connections)
            ):
                try:
                    wait_read(fileno)
                except OSError:  # the listener was closed: stopping
                    return
                if board is not None and self._leave_to_others(board, fileno):
                    continue
                if len(connections) >= self.max_connections and not self._make_room(fileno):
                    if self.stopping:
                        return
                    continue  # another worker took the client meanwhile
            try:
                client, address = gsock.accept()
            except BlockingIOError:
                accepted = 0
                try:
                    wait_read(fileno)  # nobody waits (or another worker was quicker)
                except OSError:
                    return
                continue
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
            self._add(listener, client, address, tcp, tls, base)
            accepted += 1
            if accepted % _ACCEPT_BATCH == 0:
                gevent.sleep(0)  # a long burst of clients must not starve the connections already in

    def _add(self, listener: Listener, client: Any, address: Any, tcp: bool, tls: Any, base: Any) -> None:
        if tcp:
            try:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # pragma: no cover - the peer is already gone
                pass
        silent = _nothing_received(client)
        conn = self._connection(listener, client, address, tls, base)
        self.connections.add(conn)
        if self.board is not None:
            self.board.publish(self.board_slot, len(self.connections))
        if silent:
            conn.wait_parked(self.drain_grace if self.stopping else self.header_timeout)
        else:
            conn.greenlet = self.spawn(conn.run)

    def _leave_to_others(self, board: LoadBoard, fileno: int) -> bool:
        """A client waits: leave it to a less loaded worker for a moment. True if one took it.

        Every worker waiting on a shared socket wakes up for each new client;
        without this, the busiest one (already running, so first to call
        accept) takes them all. A worker with more connections than another
        accepting worker waits up to ACCEPT_DEFER for that one to accept; if
        it does not (its event loop is busy), this one does.
        """
        slot = self.board_slot
        connections = self.connections
        if board.fewest_elsewhere(slot) >= len(connections):
            return False
        deadline = monotonic() + ACCEPT_DEFER
        while monotonic() < deadline:
            gevent.sleep(_DEFER_STEP)
            if not _readable(fileno):
                return True  # another worker accepted it
            if board.fewest_elsewhere(slot) >= len(connections):
                return False
        return False

    def _connection(
        self, listener: Listener, client: Any, address: Any, tls: Any, base: dict[str, Any]
    ) -> Connection:
        if listener.is_unix:
            peer, peer_ip = None, None
        else:
            peer_ip = str(address[0])
            peer = (peer_ip, address[1])
        policy = self.proxy_policy
        proxy = policy if policy is not None and policy.trusts(peer_ip) else None
        # (With --proxy-protocol the peer is the load balancer: the preface decides again.)
        if tls is not None and not listener.is_unix:
            conn: Connection = TLSConnection(self, client, base, proxy, peer)
        else:
            conn = Connection(self, client, base, proxy, peer)
        if listener.wildcard:
            try:
                conn.server_name = client.getsockname()[0]
            except OSError:  # pragma: no cover - the peer is already gone
                pass
        return conn

    def _make_room(self, fileno: int) -> bool:
        """A client is waiting and the pool is full: free a slot for it.

        In this order: connections that have sent no complete request yet and
        waited longer than SILENT_GRACE (a batch of the oldest), then the idle
        keep-alive connection idle the longest; with none, wait until a
        connection ends or starts waiting. Meanwhile another worker with room
        may take the client: then ``False`` (and when the server stops).
        """
        room = self._room
        while len(self.connections) >= self.max_connections:
            if self.stopping:
                return False
            room.clear()
            if not self._evict():
                self.room_wanted = True  # woken by connection_done or a connection starting to wait
                room.wait(SILENT_GRACE)  # a silent connection may become old enough meanwhile
                self.room_wanted = False
            else:
                room.wait(SILENT_GRACE)
            if not _readable(fileno):
                return False  # another worker with room took the client
        return True

    def _evict(self) -> bool:
        """Close what waits on its client to make room (see _make_room); False if nothing could go."""
        now = monotonic()
        silent_before = now - SILENT_GRACE
        silent: list[Connection] = []
        idle: Connection | None = None
        for conn in self.connections:
            waiting = conn.waiting
            if waiting == BUSY:
                continue
            if waiting == WAIT_HEAD or not conn.requests:
                if conn.waiting_since < silent_before:
                    silent.append(conn)
            elif idle is None or conn.waiting_since < idle.waiting_since:
                idle = conn
        closed = 0
        metrics = self.metrics
        if silent:
            silent.sort(key=_waiting_since)
            for conn in silent[:EVICT_BATCH]:
                closed += conn.close_waiting()
            if closed:
                log.debug("connection pool full: closed %d connections that sent no request", closed)
                if metrics is not None:
                    metrics.evicted("silent", closed)
        elif idle is not None and idle.close_waiting():
            closed = 1
            log.debug("connection pool full: closed the longest idle keep-alive connection")
            if metrics is not None:
                metrics.evicted("idle")
        return closed > 0

    def close_websockets(self) -> None:
        """Graceful stop: every open WebSocket gets a close frame with 1001 (going away) now."""
        for websocket in list(self.websockets):
            gevent.spawn(websocket.going_away)

    def busy_connections(self) -> int:
        """Connections whose greenlet is not waiting for its client (a request in progress)."""
        return sum(1 for conn in self.connections if conn.waiting == BUSY and conn.parked is None)

    def wake_acceptors(self) -> None:
        self._room.set()

    def connection_done(self, conn: Connection) -> None:
        connections = self.connections
        connections.discard(conn)
        if self.board is not None and not self.stopping:
            self.board.publish(self.board_slot, len(connections))
        if len(connections) < self.max_connections:
            self._room.set()
        if not connections:
            self._idle_done.set()

    # -- stopping ----------------------------------------------------------------------

    def stop_accepting(self, take_queued: bool = True) -> None:
        """No new connections: take the clients already queued, then close the listeners.

        The connections in a listening socket's queue are reset when its last
        descriptor closes: on a socket of this worker's own (``--reuse-port``),
        or when the whole server stops. Those clients already sent their
        requests, so they are accepted and answered (with ``Connection: close``)
        instead.
        """
        if self.stopping:
            return
        self.stopping = True
        self.exchange_settings.draining = True
        if self.board is not None:
            self.board.publish(self.board_slot, LoadBoard.NOT_ACCEPTING)
        self._room.set()
        # The acceptors' waits must end first: gevent defers closing a descriptor
        # something waits on to its next loop iteration, and a client arriving
        # in between would be reset.
        gevent.killall(self._acceptors, block=True, timeout=1.0)
        for listener, gsock, base in self._listening:
            if take_queued:
                if self.sole_listener or listener.per_worker:
                    stop_queueing(listener, gsock)
                self._take_queued(listener, gsock, base)
            try:
                gsock.close()
            except OSError:  # pragma: no cover
                pass

    def _take_queued(self, listener: Listener, gsock: Any, base: dict[str, Any]) -> None:
        tcp = not listener.is_unix
        while len(self.connections) < self.max_connections:
            try:
                client, address = gsock.accept()
            except OSError:  # EAGAIN: the queue is empty (or the socket is gone)
                return
            self._add(listener, client, address, tcp, self.ssl_context, base)

    def shutdown(self, timeout: float) -> bool:
        """Graceful stop: no new connections; requests in progress get ``timeout`` to finish.

        A connection waiting for its next request is closed once it has
        waited ``drain_grace`` (at once if it already has, unless its request
        has just arrived); a request that arrives before then is answered with
        ``Connection: close``. Returns ``True`` when every connection ended in time.
        """
        self.stop_accepting()
        self.close_waiting_connections()
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

    def close_waiting_connections(self) -> None:
        """Stopping: close the connections idle past the grace, shorten the others' waits."""
        grace = self.drain_grace
        close_before = monotonic() - grace
        for conn in list(self.connections):
            if conn.waiting != WAIT_REQUEST:
                continue
            if conn.waiting_since <= close_before:
                conn.close_waiting()
            elif conn.deadline:
                conn.deadline = min(conn.deadline, conn.waiting_since + grace)

    def kill(self) -> None:
        """Quick stop: cut every connection now."""
        self.stop_accepting(take_queued=False)
        greenlets = [conn.greenlet for conn in list(self.connections) if conn.greenlet is not None]
        if greenlets:
            gevent.killall(greenlets, block=True, timeout=1.0)
        for conn in list(self.connections):
            if conn.parked is not None:
                conn.close_waiting()
        if self._reaper is not None:
            self._reaper.kill(block=False)
        for greenlet in self._greenlets:
            greenlet.kill(block=False)
        self._stopped.set()


def _nothing_received(client: Any) -> bool:
    """Whether a just-accepted client has sent nothing yet (a peek that never blocks)."""
    try:
        client._sock.recv(1, socket.MSG_PEEK)  # data, or EOF: served (or closed) at once
    except BlockingIOError:
        return True
    except (OSError, AttributeError):
        pass
    return False


def _waiting_since(conn: Connection) -> float:
    return conn.waiting_since


def _readable(fileno: int) -> bool:
    """Whether a client waits on a listening socket (a poll that never blocks)."""
    try:
        return bool(_poll_readable([fileno], [], [], 0)[0])
    except (OSError, ValueError):  # closed meanwhile
        return False
