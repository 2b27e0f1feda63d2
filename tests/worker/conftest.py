"""Tier (b): the worker's server and connections, in this process, without monkey-patching.

The gevent hub runs in the test's main thread; clients (``http.client``,
plain sockets) run in real OS threads. Nothing is patched: the worker code
uses ``gevent.socket`` explicitly, and the clients use the standard library's
blocking sockets, so the two sides really are independent. Applications in
these tests must wait with ``gevent.sleep``, never ``time.sleep`` (which would
block the hub, since it is not patched here).
"""

from __future__ import annotations

import http.client
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from time import monotonic
from typing import Any

import gevent
import pytest
from gevent import socket as gsocket

from greenserve.config import from_mapping
from greenserve.protocol.environ import base_environ
from greenserve.sockets import Listener
from greenserve.worker.connection import Connection
from greenserve.worker.server import WorkerServer
from greenserve.worker.wsgi import FileWrapper

#: Short timeouts so tests that wait on them stay fast.
DEFAULTS = {"keep_alive": 5, "header_timeout": 2, "client_timeout": 2, "access_log": False}


def run_in_thread(fn: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Run ``fn`` in a real thread while the gevent hub keeps serving in this one."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = monotonic() + timeout
    while thread.is_alive():
        if monotonic() > deadline:
            raise AssertionError(f"the client thread did not finish within {timeout} s")
        gevent.sleep(0.002)
    if "error" in result:
        raise result["error"]
    return result.get("value")


def wait_serving(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "") -> None:
    """Poll ``predicate`` while the gevent hub keeps serving in this thread (bounded)."""
    deadline = monotonic() + timeout
    while not predicate():
        if monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what or predicate}")
        gevent.sleep(0.002)


def start_in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Start ``fn`` in a real thread; ``join_serving`` waits for it while serving."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


def join_serving(thread: threading.Thread, result: dict[str, Any], timeout: float = 10.0) -> Any:
    deadline = monotonic() + timeout
    while thread.is_alive():
        if monotonic() > deadline:
            raise AssertionError(f"the client thread did not finish within {timeout} s")
        gevent.sleep(0.002)
    if "error" in result:
        raise result["error"]
    return result.get("value")


def serve_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Let the hub serve until ``predicate()`` holds (or ``timeout`` passes); its last value.

    For a state the server reaches in its own time (a connection idle or
    parked, a request in the application): the test waits for it instead of
    sleeping for a guess.
    """
    deadline = monotonic() + timeout
    while not predicate():
        if monotonic() > deadline:
            return False
        gevent.sleep(0.01)
    return True


class Harness:
    """A :class:`WorkerServer` on a loopback listener, served by this thread's hub."""

    def __init__(self, app: Callable, park_after: float | None = None, **settings: Any) -> None:
        self.config = from_mapping({**DEFAULTS, **settings}, "test")
        std = socket.socket()
        std.bind(("127.0.0.1", 0))
        std.listen(64)
        self.address = std.getsockname()[:2]
        listener = Listener(std, "tcp", server_name="127.0.0.1", server_port=str(self.address[1]))
        self.server = WorkerServer(self.config, app, [listener])
        if park_after is not None:
            # Before start(): the reaper reads it when it first runs.
            self.server.park_after = park_after
        self.server.start()

    def connect(self, timeout: float = 5.0) -> socket.socket:
        return socket.create_connection(self.address, timeout=timeout)

    def http(self, timeout: float = 5.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(*self.address, timeout=timeout)

    def close(self) -> None:
        self.server.kill()


@pytest.fixture
def harness() -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(app: Callable, park_after: float | None = None, **settings: Any) -> Harness:
        made.append(Harness(app, park_after, **settings))
        return made[-1]

    yield make
    for item in made:
        item.close()


class PairHTTPConnection(http.client.HTTPConnection):
    """``http.client`` talking over one end of a socketpair (it cannot reconnect)."""

    def __init__(self, sock: socket.socket, timeout: float = 5.0) -> None:
        super().__init__("socketpair.test", timeout=timeout)
        sock.settimeout(timeout)
        self.sock = sock

    def connect(self) -> None:
        raise ConnectionError("a socketpair connection cannot be reopened")


class PairHarness:
    """One :class:`Connection` serving one end of a socketpair; the test holds the other end."""

    def __init__(self, app: Callable, wrap: Callable[[Any], Any] | None = None, **settings: Any) -> None:
        config = from_mapping({**DEFAULTS, **settings}, "test")
        self.server = WorkerServer(config, app, [])
        self.server.start()  # no listeners: only the timeout reaper
        server_end, self.client = socket.socketpair()
        gsock = gsocket.socket(
            server_end.family, server_end.type, server_end.proto, fileno=server_end.detach()
        )
        base = base_environ(
            server_name="socketpair.test",
            server_port="80",
            remote_addr="",
            remote_port="",
            url_scheme="http",
            root_path="",
            server_software="greenserve-test",
            multiprocess=False,
            extra={"wsgi.errors": sys.stderr, "wsgi.file_wrapper": FileWrapper},
        )
        #: ``wrap``: stands between the connection and its socket (to simulate what the kernel rarely does).
        self.sock = wrap(gsock) if wrap is not None else gsock
        self.conn = Connection(self.server, self.sock, base, None)
        self.server.connections.add(self.conn)
        self.conn.greenlet = gevent.spawn(self.conn.run)

    def close(self) -> None:
        self.client.close()
        self.server.kill()


@pytest.fixture
def pair() -> Iterator[Callable[..., PairHarness]]:
    made: list[PairHarness] = []

    def make(app: Callable, wrap: Callable[[Any], Any] | None = None, **settings: Any) -> PairHarness:
        made.append(PairHarness(app, wrap, **settings))
        return made[-1]

    yield make
    for item in made:
        item.close()
