"""Single-process mode: the worker code, in this process, with no master.

Used with ``--single-process`` and always on platforms without ``fork``
(Windows). Nothing here or in what it imports before the worker starts may
need a POSIX-only module (``fcntl``, ``pwd``, ``grp``, ``resource``).
"""

from __future__ import annotations

import os
from typing import Any

from greenserve import __version__, compat, hooks, logs, pidfile
from greenserve.config import Config
from greenserve.errors import BootError
from greenserve.master import systemd
from greenserve.sockets import adopt_fd, close_listeners, create_listeners


def run(config: Config) -> int:
    """Bind, serve until stopped, clean up; returns the exit code."""
    log = logs.error_log
    log.info("Starting greenserve %s (single process, pid %d)", __version__, os.getpid())
    hooks.install(config)
    try:
        activated = systemd.listen_fds() if compat.POSIX else []
        if activated:
            # systemd socket activation (a .socket unit): its sockets, not --bind.
            log.info("Using %d socket(s) from systemd socket activation", len(activated))
            listeners = [adopt_fd(fd, config.backlog, owned=False) for fd in activated]
        else:
            listeners = create_listeners(
                config.bind,
                backlog=config.backlog,
                reuse_port=config.reuse_port,
                umask=config.umask,
            )
    except BootError as exc:
        log.error("%s", exc)
        return exc.exit_code
    scheme = "https" if config.tls else "http"
    for listener in listeners:
        log.info("Listening at: %s (%d)", listener.url("http" if listener.is_unix else scheme), os.getpid())
    for setting, value in (
        ("--workers", config.workers > 1),
        ("--reload", config.reload),
        ("--preload", config.preload),
        ("--control-socket", config.control_socket not in ("", "auto")),
    ):
        if value:
            log.warning("%s does not apply to single-process mode (no master): ignored", setting)
    status = None
    try:
        if config.metrics_bind:
            status = _StatusPage(config)
            log.info("Metrics at: %s/metrics (%d)", status.endpoint.url, os.getpid())
        if config.pidfile:
            pidfile.write(config.pidfile)
        if config.user or config.group:
            if not compat.POSIX:
                raise BootError("--user/--group are not available on this platform")
            from greenserve.privileges import drop_privileges, resolve_ids

            # After binding: low ports work.
            drop_privileges(*resolve_ids(config.user, config.group), config.initgroups)
        from greenserve.worker import boot

        return boot.run(
            config,
            listeners,
            multiprocess=False,
            sole_listener=True,
            metrics=status.metrics if status is not None else None,
            on_ready=lambda server: _ready(server, status),
        )
    except BootError as exc:
        log.error("%s", exc)
        return exc.exit_code
    finally:
        if status is not None:
            status.endpoint.close()
        close_listeners(listeners)
        if config.pidfile:
            pidfile.remove(config.pidfile)


def _ready(server: Any, status: _StatusPage | None) -> None:
    """The one process serves: tell systemd (Type=notify), and answer metrics scrapes."""
    systemd.notify(f"READY=1\nSTATUS=serving (single process)\nMAINPID={os.getpid()}")
    if status is not None:
        status.serve(server)


class _StatusPage:
    """--metrics-bind without a master: the one process counts and answers scrapes itself."""

    def __init__(self, config: Config) -> None:
        from greenserve import metrics
        from greenserve.master.httpstatus import StatusEndpoint

        self.metrics = metrics.WorkerMetrics()
        self.endpoint = StatusEndpoint(config.metrics_bind, self.page)
        self.server: Any = None

    def serve(self, server: Any) -> None:
        """Once the worker serves (its event loop runs): answer scrapes from a greenlet."""
        import gevent
        from gevent import select

        self.server = server

        def loop() -> None:
            endpoint = self.endpoint
            while True:
                readable, writable, _ = select.select(endpoint.read_fds(), endpoint.write_fds(), [], 0.5)
                endpoint.handle(readable, writable)

        gevent.spawn(loop)

    def page(self, path: str) -> tuple[str, str, bytes]:
        from greenserve import metrics

        server = self.server
        if path == "/metrics":
            server.publish_gauges()
            self.metrics.publish()  # this process counts too: no need to wait for the next publishing
            text = metrics.render({"1": self.metrics.snapshot()}, metrics.Totals(), {"workers": 1})
            return "200 OK", metrics.CONTENT_TYPE, text.encode("utf-8")
        if path == "/healthz":
            return "200 OK", "text/plain", b"ok\n"
        if path == "/readyz":
            if server is not None and not server.stopping:
                return "200 OK", "text/plain", b"ready\n"
            return "503 Service Unavailable", "text/plain", b"not ready\n"
        return "404 Not Found", "text/plain", b"try /metrics, /healthz or /readyz\n"
