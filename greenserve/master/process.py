"""One worker process as the master sees it, and the code a worker runs after fork.

The master keeps a :class:`WorkerRecord` per child. In the child,
:func:`child_main` undoes what the master set up (signal handlers, other
workers' descriptors), drops privileges, and hands over to
:func:`greenserve.worker.boot.run`, which patches with gevent before it
imports the application.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from greenserve import hooks, logs, proctitle
from greenserve.errors import EXIT_BOOT_ERROR, EXIT_ERROR, BootError
from greenserve.workerlink import WorkerLink

if TYPE_CHECKING:
    from greenserve.master.arbiter import Arbiter

log = logging.getLogger("greenserve.error")

BOOTING = "booting"
READY = "ready"
STOPPING = "stopping"


@dataclass(eq=False)
class WorkerRecord:
    """A worker process: what the master knows about it (also passed to hooks)."""

    #: Spawn order, 1 for the first worker of this master.
    age: int
    link: WorkerLink
    #: Incremented by each reload (HUP): older generations are replaced.
    generation: int
    #: This worker's --max-requests, jitter included (0: unlimited).
    max_requests: int
    pid: int = 0
    state: str = BOOTING
    spawned_at: float = 0.0
    #: Asked to retire (--max-requests): replaced, then stopped.
    retiring: bool = False
    #: When SIGABRT was sent for a missed heartbeat (0: not sent).
    aborted_at: float = 0.0
    #: When a stop signal was sent (0: not sent).
    stop_sent_at: float = 0.0
    #: The stop was asked for by the master (not a crash).
    expected_exit: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    #: gunicorn's ``worker.log`` for hooks: info(), warning(), exception()... to the error log.
    log: ClassVar[logs.ServerLog] = logs.SERVER_LOG

    def __repr__(self) -> str:
        return f"<worker {self.pid} age={self.age} gen={self.generation} {self.state}>"


def resolve_ids(user: str, group: str) -> tuple[int | None, int | None]:
    """``--user``/``--group`` names or numbers -> (uid, gid). POSIX only."""
    uid = gid = None
    if user:
        import pwd

        try:
            entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
        except KeyError:
            raise BootError(f"--user {user}: no such user") from None
        uid, gid = entry.pw_uid, entry.pw_gid
    if group:
        import grp

        try:
            gid = grp.getgrgid(int(group)).gr_gid if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise BootError(f"--group {group}: no such group") from None
    return uid, gid


def drop_privileges(uid: int | None, gid: int | None) -> None:
    if gid is not None and gid != os.getgid():
        os.setgroups([gid])
        os.setgid(gid)
    if uid is not None and uid != os.getuid():
        os.setuid(uid)


def child_main(arbiter: Arbiter, worker: WorkerRecord) -> int:
    """Runs in the forked child; returns the exit code."""
    worker.pid = os.getpid()
    config = arbiter.config
    from greenserve.worker import boot  # imports no gevent: signals are held first

    try:
        boot.hold_signals()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, arbiter.SIGNALS)  # blocked by spawn_worker
        arbiter.close_in_child(worker)
        worker.link.after_fork_in_worker()
        if "gevent" in sys.modules:  # --preload: the master patched and maybe made a hub
            import gevent

            gevent.reinit()
        logs.after_fork(worker.age)  # --log-config: this worker's own handlers
        proctitle.start_worker(arbiter.proc_name, worker.generation, config.worker_connections)
        hooks.notify(hooks.PostFork(arbiter, worker))  # as gunicorn: before patching and --user
        ssl_context = boot.before_dropping_privileges(config)
        listeners = arbiter.listeners_for_worker()  # --reuse-port may bind port 443 here
        drop_privileges(arbiter.uid, arbiter.gid)
    except BootError as exc:
        return boot.fail_boot(worker.link, str(exc), EXIT_BOOT_ERROR)
    except Exception as exc:  # a failing hook must not become a respawn loop
        log.exception("worker %d failed to start", os.getpid())
        return boot.fail_boot(worker.link, f"{type(exc).__name__}: {exc}", EXIT_BOOT_ERROR)

    return boot.run(
        config,
        listeners,
        multiprocess=arbiter.num_workers > 1,
        link=worker.link,
        worker=worker,
        app=arbiter.preloaded_app,
        master_pid=arbiter.pid,
        ssl_context=ssl_context,
    )


def run_child(arbiter: Arbiter, worker: WorkerRecord) -> None:
    """Fork target: never returns; the exit code is the only message to the master."""
    code = EXIT_ERROR
    try:
        code = child_main(arbiter, worker)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else EXIT_ERROR
    except BaseException:  # noqa: BLE001 - the child must always reach os._exit
        with contextlib.suppress(Exception):
            log.error("worker %d crashed:\n%s", os.getpid(), traceback.format_exc())
    finally:
        with contextlib.suppress(Exception):
            logging.shutdown()
        os._exit(code)
