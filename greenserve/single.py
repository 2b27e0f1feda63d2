"""Single-process mode: the worker code, in this process, with no master.

Used with ``--single-process`` and always on platforms without ``fork``
(Windows). Nothing here or in what it imports before the worker starts may
need a POSIX-only module (``fcntl``, ``pwd``, ``grp``, ``resource``).
"""

from __future__ import annotations

import os

from greenserve import __version__, compat, hooks, logs, pidfile
from greenserve.config import Config
from greenserve.errors import BootError
from greenserve.sockets import close_listeners, create_listeners


def run(config: Config) -> int:
    """Bind, serve until stopped, clean up; returns the exit code."""
    log = logs.error_log
    log.info("Starting greenserve %s (single process, pid %d)", __version__, os.getpid())
    hooks.install(config)
    try:
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
    ):
        if value:
            log.warning("%s does not apply to single-process mode (no master): ignored", setting)
    try:
        if config.pidfile:
            pidfile.write(config.pidfile)
        if config.user or config.group:
            if not compat.POSIX:
                raise BootError("--user/--group are not available on this platform")
            from greenserve.privileges import drop_privileges, resolve_ids

            # After binding: low ports work.
            drop_privileges(*resolve_ids(config.user, config.group), config.initgroups)
        from greenserve.worker import boot

        return boot.run(config, listeners, multiprocess=False, sole_listener=True)
    except BootError as exc:
        log.error("%s", exc)
        return exc.exit_code
    finally:
        close_listeners(listeners)
        if config.pidfile:
            pidfile.remove(config.pidfile)
