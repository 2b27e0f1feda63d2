"""A tiny HTTP endpoint inside the master's loop: ``/metrics``, ``/healthz``, ``/readyz``.

The master is a plain blocking loop around ``select()`` with no threads (a
thread in a process that forks can leave a lock held in every child). So
this endpoint is non-blocking and bounded, and the loop drives it: the
listening socket and the scrapers' sockets join the loop's ``select()``; a
request head may take at most 8 KiB and 2 seconds, one response is written
per connection, and at most 64 scrapers are served at once.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import time
from collections.abc import Callable

from greenserve.sockets import Listener, close_listeners, create_listeners

log = logging.getLogger("greenserve.error")

#: (status line, content type, body) for a request path.
Route = Callable[[str], tuple[str, str, bytes]]

_MAX_HEAD = 8192
_TIMEOUT = 2.0
_MAX_CLIENTS = 64


class _Client:
    __slots__ = ("deadline", "inbox", "outbox", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbox = b""
        self.outbox = b""
        self.deadline = time.monotonic() + _TIMEOUT


class StatusEndpoint:
    """Serves ``route(path)`` on ``bind``, one request per connection."""

    def __init__(self, bind: str, route: Route, backlog: int = 64) -> None:
        self.route = route
        self.listener: Listener = create_listeners([bind], backlog=backlog)[0]
        self.listener.sock.setblocking(False)
        self._clients: dict[int, _Client] = {}

    @property
    def url(self) -> str:
        return self.listener.url()

    def read_fds(self) -> list[int]:
        """What the loop's select() should watch for reading."""
        fds = [self.listener.sock.fileno()] if len(self._clients) < _MAX_CLIENTS else []
        fds += [fd for fd, client in self._clients.items() if not client.outbox]
        return fds

    def write_fds(self) -> list[int]:
        return [fd for fd, client in self._clients.items() if client.outbox]

    def handle(self, readable: list[int], writable: list[int]) -> None:
        """After select(): accept, read, answer, and drop clients past their deadline."""
        listening = self.listener.sock.fileno()
        if listening in readable:
            self._accept()
        for fd in list(self._clients):
            client = self._clients[fd]
            try:
                if fd in readable and not client.outbox:
                    self._read(client)
                if fd in writable and client.outbox:
                    self._write(client)
            except OSError:
                self._drop(client)
                continue
            if time.monotonic() > client.deadline:
                self._drop(client)

    def close(self) -> None:
        for client in list(self._clients.values()):
            self._drop(client)
        close_listeners([self.listener])

    # -- one client --------------------------------------------------------------------------

    def _accept(self) -> None:
        for _ in range(16):
            try:
                sock, _ = self.listener.sock.accept()
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EINTR):
                    log.warning("metrics endpoint: accept() failed: %s", exc)
                return
            sock.setblocking(False)
            self._clients[sock.fileno()] = _Client(sock)
            if len(self._clients) >= _MAX_CLIENTS:
                return

    def _read(self, client: _Client) -> None:
        data = client.sock.recv(4096)
        if not data:
            self._drop(client)
            return
        client.inbox += data
        end = client.inbox.find(b"\r\n\r\n")
        if end < 0:
            if len(client.inbox) > _MAX_HEAD:
                self._respond(client, "431 Request Header Fields Too Large", "text/plain", b"too large\n")
            return
        line = client.inbox.split(b"\r\n", 1)[0]
        parts = line.split(b" ")
        if len(parts) != 3 or parts[0] not in (b"GET", b"HEAD") or not parts[2].startswith(b"HTTP/1."):
            self._respond(client, "400 Bad Request", "text/plain", b"bad request\n")
            return
        path = parts[1].split(b"?", 1)[0].decode("latin-1")
        try:
            status, content_type, body = self.route(path)
        except Exception:
            log.exception("metrics endpoint: error rendering %s", path)
            status, content_type, body = "500 Internal Server Error", "text/plain", b"error\n"
        self._respond(client, status, content_type, b"" if parts[0] == b"HEAD" else body, len(body))

    def _respond(
        self, client: _Client, status: str, content_type: str, body: bytes, length: int | None = None
    ) -> None:
        head = (
            f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body) if length is None else length}\r\nConnection: close\r\n\r\n"
        )
        client.outbox = head.encode("latin-1") + body
        self._write(client)

    def _write(self, client: _Client) -> None:
        sent = client.sock.send(client.outbox)
        client.outbox = client.outbox[sent:]
        if not client.outbox:
            self._drop(client)

    def _drop(self, client: _Client) -> None:
        self._clients.pop(client.sock.fileno(), None)
        with contextlib.suppress(OSError):
            client.sock.close()
