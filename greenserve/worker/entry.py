"""What a forked worker runs, and ``--preload``: the master names these by import string.

The master never imports this package (it must not import gevent): after
``fork()`` the child imports :func:`main` by name and hands it plain values
(:class:`~greenserve.workerlink.WorkerStart`). The sequence, in gunicorn's order:

1. hold stop signals (remembered, acted on once serving) and unblock the rest;
2. ``gevent.reinit()`` if the master preloaded (and so imported gevent);
3. the ``post_fork`` hook, as the master's user;
4. patch with gevent, import every module of greenserve's the worker may need,
   read the TLS key, bind ``--reuse-port`` sockets: all still as the master's user,
   since with ``--user`` the interpreter, greenserve and the key may be
   unreadable afterwards;
5. drop privileges, then :func:`greenserve.worker.boot.run` imports the
   application and serves.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
from typing import Any

from greenserve import hooks, logs, proctitle
from greenserve.config import Config
from greenserve.errors import EXIT_BOOT_ERROR, BootError
from greenserve.privileges import drop_privileges, will_change
from greenserve.sockets import Listener, create_listeners
from greenserve.workerlink import WorkerStart

log = logging.getLogger("greenserve.error")

#: Modules a worker may import lazily once it serves: with --user they must be
#: imported while the master's user can still read them (see import_for_later).
_LATER = (
    "greenserve.importer",
    "greenserve.worker.accesslog",
    "greenserve.worker.server",
    "greenserve.asgi.bridge",
    "greenserve.asgi.lifespan",
    "greenserve.asgi.loop_thread",
    "greenserve.asgi.scope",
    "greenserve.asgi.websocket",
    "greenserve.worker.blocker",
    "gevent.resolver.thread",
    "gevent.threadpool",
    "gevent.select",
    "traceback",
    "json",
)


def main(start: WorkerStart) -> int:
    """The forked child's life; returns its exit code (see greenserve.errors)."""
    from greenserve.worker import boot  # imports no gevent: nothing is patched yet

    config = start.config
    try:
        boot.hold_signals()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, start.unblock_signals)
        start.link.after_fork_in_worker()
        if "gevent" in sys.modules:  # --preload: the master patched and maybe made a hub
            import gevent

            gevent.reinit()
        logs.after_fork(start.worker.age)  # --log-config: this worker's own handlers
        proctitle.start_worker(start.proc_title, start.worker.generation, config.worker_connections)
        hooks.notify(hooks.PostFork(start.hook_server, start.worker))
        ssl_context = boot.before_dropping_privileges(config)
        listeners = own_listeners(start.listeners, config)  # --reuse-port may bind port 443 here
        if will_change(start.uid, start.gid):
            import_for_later()
            drop_privileges(start.uid, start.gid, config.initgroups)
    except BootError as exc:
        return boot.fail_boot(start.link, str(exc), EXIT_BOOT_ERROR)
    except Exception as exc:  # a failing hook must not become a respawn loop
        log.exception("worker %d failed to start", os.getpid())
        return boot.fail_boot(start.link, f"{type(exc).__name__}: {exc}", EXIT_BOOT_ERROR)

    return boot.run(
        config,
        listeners,
        multiprocess=start.multiprocess,
        link=start.link,
        worker=start.worker,
        app=start.preloaded_app,
        master_pid=start.master_pid,
        ssl_context=ssl_context,
        board=start.board,
        board_slot=start.board_slot,
        metrics=start.metrics,
    )


def own_listeners(listeners: list[Listener], config: Config) -> list[Listener]:
    """The master's listeners, or with ``--reuse-port`` this worker's own TCP sockets on their ports."""
    if not config.reuse_port:
        return listeners
    own = []
    for listener in listeners:
        if listener.is_unix:
            own.append(listener)
            continue
        for mine in create_listeners([listener.bind_spec()], backlog=config.backlog, reuse_port=True):
            mine.per_worker = True
            own.append(mine)
    return own


def import_for_later() -> None:
    """Import what the worker may import lazily, before ``--user`` may make it unreadable.

    A virtualenv in a 0700 home directory, or an interpreter under /root,
    cannot be read by ``www-data`` once the worker switched to it: a module
    imported on first use (the ASGI bridge, the WebSocket code, gevent's
    resolver) would then fail in the middle of serving.
    """
    import gevent

    for name in _LATER:
        try:
            importlib.import_module(name)
        except ImportError as exc:  # an optional part (uvloop, wsproto) that is not installed
            log.debug("not importing %s before dropping privileges: %s", name, exc)
    hub = gevent.get_hub()
    hub.threadpool  # noqa: B018 - made (and its modules imported) now, not on first DNS lookup
    hub.resolver  # noqa: B018


def preload(config: Config) -> Any:
    """``--preload``: the application, imported in the master after gevent patched it.

    Raises :class:`~greenserve.errors.AppLoadError` (the master stops).
    """
    from greenserve.worker import boot

    boot.patch()
    return boot.load_application(config)
