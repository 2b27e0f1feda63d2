"""One worker process as the master sees it, and the hand-over to the worker after fork.

The master keeps a :class:`WorkerRecord` per child. In the child,
:func:`child_main` closes what belongs to the master and the other workers,
then calls the worker's entry point, named by import string
(:data:`WORKER_ENTRY`) with plain values: the master never imports the
worker's code, which imports gevent.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from greenserve import logs, proctitle
from greenserve.errors import EXIT_ERROR
from greenserve.workerlink import WorkerLink, WorkerStart

if TYPE_CHECKING:
    from greenserve.master.arbiter import Arbiter

log = logging.getLogger("greenserve.error")

#: What a forked child runs (see greenserve/worker/entry.py).
WORKER_ENTRY = "greenserve.worker.entry:main"
#: What --preload runs in the master (gevent patches the master, then the app is imported).
PRELOAD_ENTRY = "greenserve.worker.entry:preload"

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
    #: Its slot on the master's LoadBoard (-1: none).
    board_slot: int = -1
    #: Its metrics block, with --metrics-bind (greenserve.metrics.WorkerMetrics).
    metrics: Any = None
    #: Why the master stopped it: reload, max_requests, scale_down ("" otherwise).
    stop_cause: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: gunicorn's ``worker.log`` for hooks: info(), warning(), exception()... to the error log.
    log: ClassVar[logs.ServerLog] = logs.SERVER_LOG

    def __repr__(self) -> str:
        return f"<worker {self.pid} age={self.age} gen={self.generation} {self.state}>"


def import_entry(name: str) -> Callable[..., Any]:
    """``"package.module:function"`` -> the function: how the master names worker code it never imports."""
    module, _, attr = name.partition(":")
    return getattr(importlib.import_module(module), attr)


def child_main(arbiter: Arbiter, worker: WorkerRecord) -> int:
    """Runs in the forked child: close what is the master's, then hand over to the worker's entry."""
    worker.pid = os.getpid()
    arbiter.close_in_child(worker)
    start = WorkerStart(
        config=arbiter.config,
        listeners=arbiter.listeners,
        link=worker.link,
        worker=worker,
        hook_server=arbiter,
        master_pid=arbiter.pid,
        uid=arbiter.uid,
        gid=arbiter.gid,
        proc_title=proctitle.worker_title_base(arbiter.proc_name),
        unblock_signals=arbiter.SIGNALS,
        multiprocess=arbiter.num_workers > 1,
        preloaded_app=arbiter.preloaded_app,
        board=arbiter.board,
        board_slot=worker.board_slot,
        metrics=worker.metrics,
    )
    return int(import_entry(WORKER_ENTRY)(start))


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
