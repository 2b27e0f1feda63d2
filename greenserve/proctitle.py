"""Process titles for ``ps`` and ``top``: which process is the master, what each worker is doing.

::

    greenserve: master [myproject.wsgi:application]
    greenserve: worker [myproject.wsgi:application] gen 2 booting
    greenserve: worker [myproject.wsgi:application] gen 2 idle
    greenserve: worker [myproject.wsgi:application] gen 2 busy 3/1000
    greenserve: worker [myproject.wsgi:application] gen 2 stopping busy 1/1000

The name in brackets is ``--proc-name`` (the application spec by default);
``gen`` counts reloads (SIGHUP); ``busy N/M`` is the connections with a
request in progress out of ``--worker-connections``. A worker's state is
refreshed by its supervisor greenlet at each heartbeat, and the title is
written only when it changed: nothing is paid per request.

Titles need the setproctitle package (a dependency of greenserve, with
wheels for CPython on every major platform); where it cannot be imported,
greenserve says so once at debug level and carries on without titles. This
module is imported by the master: no gevent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("greenserve.error")

_setter: Callable[[str], None] | None = None
_looked_up = False


def _find_setter() -> Callable[[str], None] | None:
    global _setter, _looked_up
    if not _looked_up:
        _looked_up = True
        try:
            from setproctitle import setproctitle
        except ImportError as exc:
            log.debug("process titles are off: setproctitle cannot be imported (%s)", exc)
        else:
            _setter = setproctitle
    return _setter


def available() -> bool:
    """Whether titles can be set in this process."""
    return _find_setter() is not None


def set_title(title: str) -> None:
    """Show ``title`` in ps/top, when setproctitle is available."""
    setter = _find_setter()
    if setter is not None:
        setter(title)


def master_title(name: str) -> str:
    return f"greenserve: master [{name}]"


def worker_title_base(name: str) -> str:
    """What comes before ``gen N`` in a worker's title (made by the master, before the fork)."""
    return f"greenserve: worker [{name}]"


class WorkerTitle:
    """A worker's title, rewritten only when its state changes."""

    __slots__ = ("_prefix", "_shown", "limit")

    def __init__(self, title: str, generation: int, limit: int) -> None:
        #: ``title``: what the master chose, ``greenserve: worker [NAME]`` (worker_title()).
        self._prefix = f"{title} gen {generation}"
        #: ``--worker-connections``, the ``M`` of ``busy N/M``.
        self.limit = limit
        self._shown = ""

    @staticmethod
    def state(busy: int, limit: int, stopping: bool = False) -> str:
        """``idle``, ``busy 3/1000``, ``stopping``, ``stopping busy 1/1000``."""
        if stopping:
            return f"stopping busy {busy}/{limit}" if busy else "stopping"
        return f"busy {busy}/{limit}" if busy else "idle"

    def show(self, state: str) -> None:
        title = f"{self._prefix} {state}"
        if title != self._shown:
            self._shown = title
            set_title(title)

    def update(self, busy: int, stopping: bool = False) -> None:
        self.show(self.state(busy, self.limit, stopping))


#: This worker's title (set right after the fork); None in the master and
#: in single-process mode, or when titles are unavailable.
worker_title: WorkerTitle | None = None


def start_worker(title: str, generation: int, limit: int) -> WorkerTitle | None:
    """In a new worker: show ``TITLE gen N booting`` and keep the title for later updates."""
    global worker_title
    worker_title = WorkerTitle(title, generation, limit) if available() else None
    if worker_title is not None:
        worker_title.show("booting")
    return worker_title
