"""statsd with gunicorn's metric names, so a gunicorn deployment's dashboards keep working.

``--statsd-host`` turns it on. Each process has its own :class:`Statsd`:

- a worker sends, after each response (where the access log is written),
  ``gunicorn.request.duration`` (``|ms``), ``gunicorn.requests`` and
  ``gunicorn.request.status.<code>`` (``|c``);
- the master sends the ``gunicorn.workers`` gauge;
- every process counts what its error log says at warning and above as
  ``gunicorn.log.warning``, ``.error``, ``.exception`` (an error with a
  traceback) and ``.critical``.

Lines are gunicorn's, byte for byte: ``PREFIX.gunicorn.requests:1|c|@1.0`` and
``|#TAGS`` appended with ``--dogstatsd-tags``. The three lines of a request
go in one datagram, separated by newlines (statsd's multi-metric packet,
read by statsd, statsd_exporter, Telegraf and the Datadog agent): one
system call per request instead of gunicorn's three.

The socket is the C-level ``_socket.socket``, non-blocking: the same object in
the master (which never imports gevent) and in a patched worker, where
``socket.socket`` would be gevent's wrapper and could wait. A datagram that
cannot be sent (no statsd listening, a full buffer) is dropped and counted,
with one warning per process: statsd never fails or delays a request.

Imported by the master: no gevent, asyncio or application.
"""

from __future__ import annotations

import _socket
import logging
from typing import Any

from greenserve import logs
from greenserve.addresses import parse_statsd_address
from greenserve.config import Config

log = logging.getLogger("greenserve.error")


def join_prefix(prefix: str) -> str:
    """What goes before ``gunicorn.``: the prefix and one ``.``, as gunicorn joins them.

    gunicorn adds a ``.`` unless the prefix ends with one (``web`` and ``web.``
    both give ``web.gunicorn.requests``); an empty prefix adds nothing.
    """
    prefix = prefix.rstrip(".")
    return prefix + "." if prefix else ""


class Statsd:
    """A statsd client that never blocks, never raises, and says once that it cannot send."""

    def __init__(self, host: str, prefix: str = "", tags: str = "") -> None:
        #: ``--statsd-host`` as given, for messages.
        self.host = host
        #: Datagrams that could not be sent.
        self.dropped = 0
        self._warned = False
        self._prefix = prefix = join_prefix(prefix)
        self._tags = tags = "|#" + tags if tags else ""
        count = ":1|c|@1.0" + tags
        # A request's datagram: one bytes template filled by % (a third of an f-string + encode's cost).
        duration = (prefix + "gunicorn.request.duration:").replace("%", "%%") + "%d.%03d"
        requests = f"|ms{tags}\n{prefix}gunicorn.requests{count}".replace("%", "%%")
        status = f"\n{prefix}gunicorn.request.status.".replace("%", "%%") + "%d" + count.replace("%", "%%")
        self._request = (duration + requests + status).encode("ascii")
        self._request_no_status = (duration + requests).encode("ascii")
        self._log_lines = {
            level: f"{prefix}gunicorn.log.{level}{count}".encode("ascii")
            for level in ("critical", "error", "exception", "warning")
        }
        self._sock: Any = None
        self._path: str | None = None  # a Unix socket, addressed on each send (see _open)
        self._open(parse_statsd_address(host))

    @classmethod
    def from_config(cls, config: Config) -> Statsd | None:
        """The client ``config`` asks for; None when ``--statsd-host`` is not set."""
        if not config.statsd_host:
            return None
        return cls(config.statsd_host, config.statsd_prefix, config.dogstatsd_tags)

    def _open(self, address: tuple[str, int] | str) -> None:
        """A UDP socket connected to the resolved address, or an unconnected Unix one.

        The host name is resolved once, here; a statsd daemon that restarts on
        its Unix socket is found again because each datagram names the path.
        """
        try:
            if isinstance(address, str):
                sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
                self._path = address
            else:
                family, _, _, _, resolved = _socket.getaddrinfo(*address, 0, _socket.SOCK_DGRAM)[0]
                sock = _socket.socket(family, _socket.SOCK_DGRAM)
                sock.connect(resolved)
            sock.setblocking(False)
        except (OSError, UnicodeError) as exc:  # UnicodeError: a name the resolver cannot encode
            self._failed(exc)
            return
        self._sock = sock

    def _failed(self, exc: Exception) -> None:
        self.dropped += 1
        if not self._warned:
            self._warned = True  # first: this warning is counted, and so sent (and may fail) too
            log.warning(
                "statsd: cannot send to %s (%s); metrics are dropped while it lasts (said once per process)",
                self.host,
                getattr(exc, "strerror", None) or exc,
            )

    def send(self, data: bytes) -> None:
        """One datagram, or nothing: never blocks, never raises."""
        sock = self._sock
        if sock is None:
            return
        try:
            if self._path is None:
                sock.send(data)
            else:
                sock.sendto(data, self._path)
        except OSError as exc:  # ECONNREFUSED (an ICMP port unreachable), EAGAIN, ENOENT...
            self._failed(exc)

    def request(self, status: int, seconds: float) -> None:
        """One served request: its duration, the request count and its status code."""
        # Whole microseconds, as gunicorn's timedelta has them; integers format faster than a float.
        ms, us = divmod(int(seconds * 1_000_000), 1000)
        if status:
            self.send(self._request % (ms, us, status))
        else:  # no response was started (the client went away): no status to count
            self.send(self._request_no_status % (ms, us))

    def gauge(self, name: str, value: float) -> None:
        self.send(f"{self._prefix}{name}:{value}|g{self._tags}".encode("ascii"))

    def increment(self, name: str, value: int = 1) -> None:
        self.send(f"{self._prefix}{name}:{value}|c|@1.0{self._tags}".encode("ascii"))

    def log_record(self, record: logging.LogRecord) -> None:
        """An error log record at warning or above: gunicorn's ``gunicorn.log.<level>`` counter."""
        level = record.levelno
        if level >= logging.CRITICAL:
            name = "critical"
        elif level >= logging.ERROR:
            name = "exception" if record.exc_info else "error"
        else:
            name = "warning"
        self.send(self._log_lines[name])

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()


#: This process's client, whose log_record counts the error log (see install).
_installed: Statsd | None = None


def install(client: Statsd | None) -> None:
    """Make ``client`` this process's: it counts the error log's warnings and errors.

    The one it replaces is closed: after a reload in the master, or in a new
    worker, which until then counted with the copy of the master's it inherited.
    """
    global _installed
    previous, _installed = _installed, client
    logs.count_records(client.log_record if client is not None else None)
    if previous is not None and previous is not client:
        previous.close()
