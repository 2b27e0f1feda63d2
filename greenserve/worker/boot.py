"""A worker's life: patch with gevent, load the application, serve, drain.

The same code runs in a forked worker and in single-process mode (and so on
Windows). gevent patches the standard library first, before the application
is imported, so everything the application imports gets cooperative sockets,
ssl, locks and ``time.sleep``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from greenserve.config import Config
from greenserve.errors import EXIT_APP_LOAD_ERROR, EXIT_BOOT_ERROR, EXIT_OK, AppLoadError, BootError
from greenserve.sockets import Listener

log = logging.getLogger("greenserve.error")


def patch() -> None:
    """``gevent.monkey.patch_all()``, once per process."""
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()


def load_application(config: Config) -> Callable:
    """Import the application (after :func:`patch`)."""
    from greenserve.importer import load_app, prepare_path

    prepare_path(config.chdir, config.pythonpath)
    return load_app(config.app)


def build_server(config: Config, app: Callable, listeners: list[Listener], *, multiprocess: bool) -> Any:
    from greenserve.worker.accesslog import AccessLog
    from greenserve.worker.server import WorkerServer, build_ssl_context

    ssl_context = None
    if config.certfile:
        try:
            ssl_context = build_ssl_context(config)
        except (OSError, ValueError) as exc:
            raise BootError(f"TLS: cannot load {config.certfile}: {exc}") from None
    access = AccessLog(config.access_logformat) if config.access_log else None
    return WorkerServer(
        config,
        app,
        listeners,
        multiprocess=multiprocess,
        access_log=access,
        ssl_context=ssl_context,
    )


class _Stopper:
    """Signal handling for a worker: the first stop signal drains, a second cuts."""

    def __init__(self, server: Any, graceful_timeout: float) -> None:
        self.server = server
        self.graceful_timeout = graceful_timeout
        self.draining = False

    def graceful(self, signum: int | None = None) -> None:
        import gevent

        if self.draining:
            self.quick(signum)
            return
        self.draining = True
        busy = sum(1 for conn in self.server.connections if not conn.idle)
        name = signal.Signals(signum).name if signum else "stop"
        log.info(
            "%s: graceful shutdown, waiting up to %g s for %d connection(s) in progress",
            name,
            self.graceful_timeout,
            busy,
        )
        gevent.spawn(self.server.shutdown, self.graceful_timeout)

    def quick(self, signum: int | None = None) -> None:
        import gevent

        name = signal.Signals(signum).name if signum else "stop"
        log.info("%s: quick shutdown", name)
        gevent.spawn(self.server.kill)

    def install(self) -> None:
        """gevent signal watchers on POSIX; plain handlers where gevent has none (Windows)."""
        graceful = [signal.SIGTERM, signal.SIGINT]
        quick = []
        if hasattr(signal, "SIGBREAK"):  # Windows: Ctrl-Break
            graceful.append(signal.SIGBREAK)
        if hasattr(signal, "SIGQUIT"):
            quick.append(signal.SIGQUIT)
        if os.name == "posix":
            import gevent

            for signum in graceful:
                gevent.signal_handler(signum, self.graceful, signum)
            for signum in quick:
                gevent.signal_handler(signum, self.quick, signum)
            return
        import gevent  # pragma: no cover - exercised by the Windows CI job

        hub = gevent.get_hub()  # pragma: no cover

        def deliver(callback: Callable[[int], None]) -> Callable[[int, Any], None]:  # pragma: no cover
            def handler(signum: int, frame: Any) -> None:
                hub.loop.run_callback_threadsafe(callback, signum)

            return handler

        for signum in graceful:  # pragma: no cover
            signal.signal(signum, deliver(self.graceful))


def run(
    config: Config,
    listeners: list[Listener],
    *,
    multiprocess: bool = False,
    on_ready: Callable[[Any], None] | None = None,
) -> int:
    """Patch, load, serve until a stop signal; returns the process exit code."""
    patch()
    try:
        app = load_application(config)
    except AppLoadError as exc:
        log.error("%s", exc)
        log.debug("application load traceback", exc_info=exc.__cause__ or exc)
        return EXIT_APP_LOAD_ERROR
    try:
        server = build_server(config, app, listeners, multiprocess=multiprocess)
    except BootError as exc:
        log.error("%s", exc)
        return EXIT_BOOT_ERROR
    stopper = _Stopper(server, config.graceful_timeout)
    stopper.install()
    server.start()
    log.info(
        "Worker %d serving %s (%s parser, up to %d connections)",
        os.getpid(),
        config.app,
        server.http_backend,
        config.worker_connections,
    )
    if on_ready is not None:
        on_ready(server)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # pragma: no cover - Windows delivers Ctrl-C this way
        server.shutdown(config.graceful_timeout)
    log.info("Worker %d stopped", os.getpid())
    sys.stderr.flush()
    return EXIT_OK
