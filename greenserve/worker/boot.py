"""A worker's life: patch with gevent, load the application, serve, drain.

The same code runs in a forked worker (after greenserve/worker/entry.py) and
in single-process mode (and so on Windows). gevent patches the standard
library first, before the application is imported, so everything the
application imports gets cooperative sockets, ssl, locks and ``time.sleep``.
Importing gevent itself patches nothing, so this module imports it at once;
the master never imports this module.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import gevent
from gevent import monkey

from greenserve import compat, hooks, proctitle
from greenserve.config import Config
from greenserve.errors import (
    EXIT_APP_LOAD_ERROR,
    EXIT_BOOT_ERROR,
    EXIT_ERROR,
    EXIT_OK,
    AppLoadError,
    BootError,
)
from greenserve.sockets import Listener
from greenserve.workerlink import MSG_ERROR, MSG_READY, MSG_RETIRE, LoadBoard, WorkerLink

log = logging.getLogger("greenserve.error")

#: The interpreter's thresholds before the application was imported (this
#: module is imported first): one that changes them keeps its own.
_GC_THRESHOLDS_AT_START = gc.get_threshold()


def patch() -> None:
    """``gevent.monkey.patch_all()``, once per process."""
    if not monkey.is_module_patched("socket"):
        monkey.patch_all()


def load_application(config: Config) -> Callable:
    """Import the application (after :func:`patch`)."""
    from greenserve.importer import load_app, prepare_path

    prepare_path(config.chdir, config.pythonpath)
    return load_app(config.app)


def prepare_asgi(config: Config, app: Callable) -> tuple[Callable, Any]:
    """Wrap an ASGI application for the worker and run its lifespan startup.

    Returns the WSGI callable to serve and the lifespan to shut down later.
    Raises AppLoadError when startup fails: the master then stops.
    """
    from greenserve.importer import detect_interface

    kind = detect_interface(app)
    if config.interface == "wsgi" or (config.interface == "auto" and kind == "wsgi"):
        return app, None
    from greenserve.asgi.bridge import ASGIBridge
    from greenserve.asgi.lifespan import Lifespan
    from greenserve.asgi.loop_thread import get_loop_thread

    loop_thread = get_loop_thread(config.loop)
    bridge = ASGIBridge(
        app,
        loop_thread=loop_thread,
        interface="asgi2" if kind == "asgi2" else "asgi3",
        cancel_grace=config.asgi_cancel_grace,
    )
    lifespan = Lifespan(bridge.app, loop_thread, config.lifespan, bridge.state)
    lifespan.startup()
    log.info("Serving %s as ASGI on a %s loop thread", config.app, loop_thread.name)
    return bridge, lifespan


def load_tls(config: Config) -> Any:
    """The worker's TLS (a :class:`~greenserve.worker.tls.ServerTLS`), or None without ``--certfile``.

    Certificate, key, its password and the ``ssl_context`` hook: all read here,
    before a forked worker drops its privileges. Raises BootError.
    """
    if not config.certfile:
        return None
    from greenserve.worker.tls import load_server_tls

    try:
        return load_server_tls(config)
    except (OSError, ValueError) as exc:
        raise BootError(f"TLS: cannot load {config.certfile}: {exc}") from None


def before_dropping_privileges(config: Config) -> Any:
    """What a forked worker does as the user that started the master; returns its TLS (or None).

    With ``--user``, only the application should need files that user can
    read: gevent and the server's own modules may live in an interpreter
    under /root (pyenv, many images) and a private key is often root-only,
    as nginx expects. So patch, import the serving code and read the key
    first; the application is imported after the drop.
    """
    patch()
    import greenserve.worker.accesslog
    import greenserve.worker.server  # noqa: F401
    from greenserve.protocol.parser import head_parser_class

    gevent.get_hub()
    head_parser_class(config.http)
    return load_tls(config)


def build_server(
    config: Config,
    app: Callable,
    listeners: list[Listener],
    *,
    multiprocess: bool,
    ssl_context: Any = None,
    board: LoadBoard | None = None,
    board_slot: int = -1,
    metrics: Any = None,
) -> Any:
    from greenserve import statsd
    from greenserve.logs import wants_access_fields
    from greenserve.worker.accesslog import AccessLog
    from greenserve.worker.server import WorkerServer

    if ssl_context is None:
        ssl_context = load_tls(config)
    fields = wants_access_fields(config)  # JSON lines or --log-config: records carry the fields
    access = AccessLog(config.access_logformat, fields=fields) if config.access_log else None
    client = statsd.Statsd.from_config(config)
    statsd.install(client)  # this worker's own, in place of the copy of the master's
    return WorkerServer(
        config,
        app,
        listeners,
        multiprocess=multiprocess,
        access_log=access,
        ssl_context=ssl_context,
        board=board,
        board_slot=board_slot,
        metrics=metrics,
        statsd=client,
    )


class _Controller:
    """Signals and the master link for one running worker.

    First stop signal drains, a second cuts. Under a master, SIGTERM drains
    and SIGINT/SIGQUIT cut (as the master asks); in single-process mode
    SIGINT (Ctrl-C) drains too, like SIGTERM.
    """

    def __init__(
        self,
        server: Any,
        config: Config,
        link: WorkerLink | None,
        worker: Any,
        master_pid: int | None,
    ) -> None:
        self.server = server
        self.config = config
        self.link = link
        self.worker = worker
        self.master_pid = master_pid
        self.draining = False
        self.max_requests = getattr(worker, "max_requests", 0) if link is not None else 0

    def graceful(self, signum: int | None = None) -> None:
        if self.draining:
            if self.link is not None and signum == signal.SIGTERM:
                # systemd (KillMode=control-group), dumb-init and `kill -TERM -PGID`
                # signal the master and every worker: that is one stop, not two.
                log.debug("Worker %d: SIGTERM again: already draining", os.getpid())
                return
            self.quick(signum)
            return
        self.draining = True
        busy = self.server.busy_connections()
        name = signal.Signals(signum).name if signum else "stop"
        log.info(
            "Worker %d: %s: graceful shutdown, waiting up to %g s for %d connection(s) in progress",
            os.getpid(),
            name,
            self.config.graceful_timeout,
            busy,
        )
        self.server.close_websockets()  # 1001 at once, not a cut at the graceful timeout
        gevent.spawn(self.server.shutdown, self.config.graceful_timeout)

    def quick(self, signum: int | None = None) -> None:
        name = signal.Signals(signum).name if signum else "stop"
        log.info("Worker %d: %s: quick shutdown", os.getpid(), name)
        self.draining = True
        gevent.spawn(self.server.kill)

    def install(self) -> None:
        """gevent signal watchers on POSIX; plain handlers where gevent has none (Windows)."""
        multiprocess = self.link is not None
        graceful = [signal.SIGTERM]
        quick = []
        if multiprocess:
            quick.append(signal.SIGINT)
        else:
            graceful.append(signal.SIGINT)
        if hasattr(signal, "SIGBREAK"):  # Windows: Ctrl-Break
            graceful.append(signal.SIGBREAK)
        if hasattr(signal, "SIGQUIT"):
            quick.append(signal.SIGQUIT)
        if compat.POSIX:
            from greenserve import logs

            for signum in graceful:
                gevent.signal_handler(signum, self.graceful, signum)
            for signum in quick:
                gevent.signal_handler(signum, self.quick, signum)
            gevent.signal_handler(signal.SIGUSR1, logs.reopen_files)
            for name in ("SIGHUP", "SIGWINCH", "SIGTTIN", "SIGTTOU", "SIGUSR2"):
                signal.signal(getattr(signal, name), signal.SIG_IGN)
            # Not through the hub: when --timeout fires, the hub is what is stuck.
            signal.signal(signal.SIGABRT, _dump_and_exit)
            return
        hub = gevent.get_hub()  # pragma: no cover

        def deliver(callback: Callable[[int], None]) -> Callable[[int, Any], None]:  # pragma: no cover
            def handler(signum: int, frame: Any) -> None:
                hub.loop.run_callback_threadsafe(callback, signum)

            return handler

        for signum in graceful:  # pragma: no cover
            signal.signal(signum, deliver(self.graceful))

    def supervise(self) -> None:
        """Greenlet: heartbeats (with this worker's activity for ``greenserve ctl``), master liveness."""
        link = self.link
        assert link is not None
        interval = max(0.05, min(1.0, self.config.timeout / 4)) if self.config.timeout else 1.0
        title = proctitle.worker_title  # ps shows idle / busy N/M: rewritten when it changes
        server = self.server
        board = server.board
        while True:
            link.beat()
            busy = server.busy_connections()
            if title is not None:
                title.update(busy, self.draining)
            if board is not None:
                board.report(server.board_slot, server.requests, len(server.connections), busy)
            if self.master_pid and os.getppid() != self.master_pid and not self.draining:
                log.warning("Worker %d: the master went away; shutting down", os.getpid())
                self.graceful(None)
            gevent.sleep(interval)

    def retire(self) -> None:
        """--max-requests reached (called by the server, once): ask for a replacement.

        The worker serves on until the replacement is ready and the master
        stops it, so capacity never drops.
        """
        log.info(
            "Worker %d served %d requests (--max-requests): asking for a replacement",
            os.getpid(),
            self.server.requests,
        )
        if self.link is not None:
            self.link.send(MSG_RETIRE)


def start_block_monitor(config: Config, server: Any) -> Any:
    """--block-threshold: report what blocks the event loop (see greenserve/worker/blocker.py)."""
    if not config.block_threshold:
        return None
    from greenserve.worker.blocker import BlockMonitor, request_in_frames

    metrics = server.metrics
    monitor = BlockMonitor(
        config.block_threshold, request_in_frames, metrics.blocked if metrics is not None else None
    )
    monitor.start()
    return monitor


def tune_garbage_collector(threshold: int) -> None:
    """Keep what start-up made out of later collections, and collect less often.

    Python's cyclic garbage collector walks every tracked object in a full
    collection; a loaded Django or FastAPI app has hundreds of thousands, all
    alive until the worker exits. Start-up garbage is collected, then the rest
    frozen (``gc.freeze()``): nothing unreachable is kept.

    Python's first-generation threshold (700 net new objects) suits a script,
    not a server with a thousand requests in flight: each request allocates a
    few dozen objects, so a collection ran every few requests, found them all
    alive and promoted them, and older generations were walked over and over.
    Measured on bench asgi-sleep: 2,000 collections in 8 s, 9% of the
    worker's time, freeing almost nothing; with 10,000, 15 collections. An
    application that set its own thresholds keeps them.
    """
    gc.collect()
    gc.freeze()
    if threshold and gc.get_threshold() == _GC_THRESHOLDS_AT_START:
        gc.set_threshold(threshold, *_GC_THRESHOLDS_AT_START[1:])


def format_stacks(frame: Any) -> str:
    """The stack that is blocking the hub (``frame``), then every other greenlet's."""
    import traceback

    from greenlet import greenlet

    parts = ["Blocking the event loop:\n" + "".join(traceback.format_stack(frame))]
    for obj in gc.get_objects():
        if isinstance(obj, greenlet) and obj.gr_frame is not None and not obj.dead:
            name = getattr(obj, "name", None) or type(obj).__name__
            parts.append(
                f"Greenlet {name} at 0x{id(obj):x}:\n" + "".join(traceback.format_stack(obj.gr_frame))
            )
    return "\n".join(parts)


def _dump_and_exit(signum: int, frame: Any) -> None:
    """SIGABRT from the master: log every greenlet's stack, then exit."""
    try:
        stacks = format_stacks(frame)
    except Exception as exc:  # noqa: BLE001 - the dump is best effort, the exit is not
        stacks = f"(could not format the stacks: {exc!r})"
    log.error("Worker %d: event loop blocked longer than --timeout (SIGABRT).\n%s", os.getpid(), stacks)
    for handler in log.handlers:
        handler.flush()
    os._exit(EXIT_ERROR)


#: Stop signals that arrived while the worker was still booting (see hold_signals).
_early_stops: list[int] = []


def hold_signals() -> None:
    """Right after fork, before gevent: remember stop signals, ignore the rest.

    The master may signal a worker at any moment, including while it imports
    the application; a default disposition would kill it (USR1) or lose the
    request to drain (TERM). The worker acts on what was held once booted.
    """
    for name in ("SIGTERM", "SIGINT", "SIGQUIT"):
        signal.signal(getattr(signal, name), lambda signum, frame: _early_stops.append(signum))
    for name in ("SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGTTIN", "SIGTTOU"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def fail_boot(link: WorkerLink | None, message: str, code: int) -> int:
    """A worker that cannot serve: tell the master (which reports it in one line); the exit code."""
    if link is not None:
        link.send(MSG_ERROR, message)  # the master reports it, in one line
    else:
        log.error("%s", message)
    return code


def run(
    config: Config,
    listeners: list[Listener],
    *,
    multiprocess: bool = False,
    link: WorkerLink | None = None,
    worker: Any = None,
    app: Callable | None = None,
    master_pid: int | None = None,
    on_ready: Callable[[Any], None] | None = None,
    ssl_context: Any = None,
    board: LoadBoard | None = None,
    board_slot: int = -1,
    sole_listener: bool = False,
    metrics: Any = None,
) -> int:
    """Patch, load, serve until a stop signal; returns the process exit code.

    Anything that fails before the worker serves is a boot failure (exit 3,
    or 4 for the application itself), which stops the master instead of
    starting a respawn loop.
    """
    lifespan = monitor = None
    try:
        patch()
        if link is not None:
            link.beat()
        if app is None:
            app = load_application(config)
        app, lifespan = prepare_asgi(config, app)
        server = build_server(
            config,
            app,
            listeners,
            multiprocess=multiprocess,
            ssl_context=ssl_context,
            board=board,
            board_slot=board_slot,
            metrics=metrics,
        )
        server.worker = worker
        server.sole_listener = sole_listener
        controller = _Controller(server, config, link, worker, master_pid)
        controller.install()
        hooks.notify(hooks.PostWorkerInit(worker))
        server.refresh_hooks()  # post_worker_init may have subscribed to per-request events
        if controller.max_requests:
            server.max_requests = controller.max_requests
            server.on_max_requests = controller.retire
        server.start()
        monitor = start_block_monitor(config, server)
        tune_garbage_collector(config.gc_threshold)
    except AppLoadError as exc:
        log.debug("application load traceback", exc_info=exc.__cause__ or exc)
        return fail_boot(link, str(exc), EXIT_APP_LOAD_ERROR)
    except BootError as exc:
        return fail_boot(link, str(exc), EXIT_BOOT_ERROR)
    except Exception as exc:
        log.exception("worker %d failed to start", os.getpid())
        return fail_boot(link, f"{type(exc).__name__}: {exc}", EXIT_BOOT_ERROR)
    log.info(
        "Worker %d serving %s (%s parser, up to %d connections)",
        os.getpid(),
        config.app,
        server.http_backend,
        config.worker_connections,
    )
    if link is not None:
        link.beat()  # fresh before the master starts checking (loading the app may have been slow)
        link.send(MSG_READY)
        gevent.spawn(controller.supervise)
    elif config.max_requests:
        log.warning("--max-requests is ignored in single-process mode (no master to replace the worker)")
    for signum in _early_stops:
        (controller.graceful if signum == signal.SIGTERM else controller.quick)(signum)
    if on_ready is not None:
        on_ready(server)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # pragma: no cover - Windows delivers Ctrl-C this way
        server.shutdown(config.graceful_timeout)
    if monitor is not None:
        monitor.stop()
    if lifespan is not None:
        lifespan.shutdown(config.graceful_timeout)
        lifespan.loop_thread.stop()
    try:
        hooks.notify(hooks.WorkerExit(worker))
    except Exception:
        log.exception("worker_exit hook failed")
    log.info("Worker %d stopped", os.getpid())
    sys.stderr.flush()
    return EXIT_OK
