"""Server hooks as events: ``zope.event`` notifications providing ``I*`` interfaces.

The master and workers :func:`notify` events at fixed points of their life;
subscribers are plain callables in ``zope.event.subscribers``. Hook
functions from a configuration file are subscribed by :func:`install`, with
gunicorn-compatible signatures (``when_ready(arbiter)``,
``pre_request(worker, environ)``, ...).

Per-request events cost nothing unless somebody asked for them:
:func:`wants` tells the worker whether to build them at all.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import zope.event
from zope.interface import implementer
from zope.interface.interface import InterfaceClass

from greenserve.interfaces import (
    IExit,
    IPostFork,
    IPostRequest,
    IPostWorkerInit,
    IPreFork,
    IPreRequest,
    IStarting,
    IWhenReady,
    IWorkerExit,
)

log = logging.getLogger("greenserve.error")


class _Event:
    __slots__: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class _ArbiterEvent(_Event):
    # No interface here: each event class provides exactly its own, so a
    # subscriber for one never receives another (implementer is inherited).
    __slots__ = ("arbiter",)

    def __init__(self, arbiter: Any) -> None:
        self.arbiter = arbiter


class _ForkEvent(_Event):
    __slots__ = ("arbiter", "worker")

    def __init__(self, arbiter: Any, worker: Any) -> None:
        self.arbiter = arbiter
        self.worker = worker


class _WorkerEvent(_Event):
    __slots__ = ("worker",)

    def __init__(self, worker: Any) -> None:
        self.worker = worker


@implementer(IStarting)
class Starting(_ArbiterEvent):
    __slots__ = ()


@implementer(IWhenReady)
class WhenReady(_ArbiterEvent):
    __slots__ = ()


@implementer(IExit)
class Exit(_ArbiterEvent):
    __slots__ = ()


@implementer(IPreFork)
class PreFork(_ForkEvent):
    __slots__ = ()


@implementer(IPostFork)
class PostFork(_ForkEvent):
    __slots__ = ()


@implementer(IPostWorkerInit)
class PostWorkerInit(_WorkerEvent):
    __slots__ = ()


@implementer(IWorkerExit)
class WorkerExit(_WorkerEvent):
    __slots__ = ()


@implementer(IPreRequest)
class PreRequest(_Event):
    __slots__ = ("environ", "worker")

    def __init__(self, worker: Any, environ: dict[str, Any]) -> None:
        self.worker = worker
        self.environ = environ


@implementer(IPostRequest)
class PostRequest(_Event):
    __slots__ = ("environ", "status", "worker")

    def __init__(self, worker: Any, environ: dict[str, Any], status: int) -> None:
        self.worker = worker
        self.environ = environ
        self.status = status


#: Configuration-file hook name -> (interface, how to call the function with the event).
HOOK_EVENTS: dict[str, tuple[InterfaceClass, Callable[[Callable, Any], Any]]] = {
    "on_starting": (IStarting, lambda fn, e: fn(e.arbiter)),
    "when_ready": (IWhenReady, lambda fn, e: fn(e.arbiter)),
    "pre_fork": (IPreFork, lambda fn, e: fn(e.arbiter, e.worker)),
    "post_fork": (IPostFork, lambda fn, e: fn(e.arbiter, e.worker)),
    "post_worker_init": (IPostWorkerInit, lambda fn, e: fn(e.worker)),
    "worker_exit": (IWorkerExit, lambda fn, e: fn(e.worker)),
    "on_exit": (IExit, lambda fn, e: fn(e.arbiter)),
    "pre_request": (IPreRequest, lambda fn, e: fn(e.worker, e.environ)),
    "post_request": (IPostRequest, lambda fn, e: fn(e.worker, e.environ, e.status)),
}

_wanted: set[InterfaceClass] = set()


class _Subscriber:
    """Calls ``handler`` for events providing ``interface``; ignores the others."""

    __slots__ = ("call", "handler", "interface", "source")

    def __init__(self, interface: InterfaceClass, handler: Callable, call: Callable, source: str) -> None:
        self.interface = interface
        self.handler = handler
        self.call = call
        self.source = source

    def __call__(self, event: Any) -> None:
        if self.interface.providedBy(event):
            self.call(self.handler, event)

    def __repr__(self) -> str:
        return f"<hook {self.source} for {self.interface.__name__}>"


_CONFIG_FILE = "config-file"
_loading_config = False


def subscribe(interface: InterfaceClass, handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Call ``handler(event)`` for every event providing ``interface``."""
    source = _CONFIG_FILE if _loading_config else getattr(handler, "__name__", "?")
    subscriber = _Subscriber(interface, handler, lambda fn, e: fn(e), source)
    zope.event.subscribers.append(subscriber)
    _wanted.add(interface)
    return subscriber


@contextlib.contextmanager
def loading_config_file() -> Iterator[None]:
    """While a configuration file runs: its subscribe() calls replace the previous run's."""
    global _loading_config
    _remove(_CONFIG_FILE)
    _loading_config = True
    try:
        yield
    finally:
        _loading_config = False


def _remove(source: str) -> None:
    zope.event.subscribers[:] = [
        s for s in zope.event.subscribers if not (isinstance(s, _Subscriber) and s.source == source)
    ]
    _wanted.clear()
    _wanted.update(s.interface for s in zope.event.subscribers if isinstance(s, _Subscriber))


def install(config: Any) -> None:
    """Subscribe the hook functions of a configuration (replacing earlier ones)."""
    _remove("config")
    for name, (interface, call) in HOOK_EVENTS.items():
        function = getattr(config, name, None)
        if function is not None:
            zope.event.subscribers.append(_Subscriber(interface, function, call, "config"))
            _wanted.add(interface)


def wants(interface: InterfaceClass) -> bool:
    """Whether any subscriber asked for ``interface`` (per-request events are skipped otherwise).

    Subscribers added straight to ``zope.event.subscribers`` (not through
    :func:`subscribe`) are unknown here, so they receive every event except
    the per-request ones.
    """
    return interface in _wanted


def notify(event: Any) -> None:
    """Announce ``event`` to every subscriber."""
    zope.event.notify(event)
