"""One asyncio event loop per worker, in a real OS thread, and the two crossings.

After ``gevent.monkey.patch_all()`` a ``threading.Thread`` is a greenlet and
``selectors.DefaultSelector`` waits through the gevent hub; an asyncio loop
needs neither. The loop thread is started with the original
``_thread.start_new_thread`` and its selector uses the original ``epoll`` /
``kqueue`` / ``select``. uvloop, when chosen, brings its own I/O.

Exactly two ways to cross between the worker's greenlets and the loop:

- greenlet -> loop: :meth:`LoopThread.to_loop` (``loop.call_soon_threadsafe``);
- loop -> greenlet: :meth:`LoopThread.to_hub`, which queues a callback and
  wakes the hub through one gevent async watcher; the callback runs in the
  hub's thread, where it may set gevent events or wake greenlets.

A greenlet never blocks the hub waiting on a thread: it waits on a gevent
event that a ``to_hub`` callback sets.
"""

from __future__ import annotations

import asyncio
import logging
import selectors
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("greenserve.error")


def _original(module: str, name: str) -> Any:
    from gevent import monkey

    return monkey.get_original(module, name)


def _native_selector() -> selectors.BaseSelector:
    """The best selector of the OS, bypassing gevent's patched ``select`` module."""
    for selector_name, factory_name in (("EpollSelector", "epoll"), ("KqueueSelector", "kqueue")):
        try:
            cls = _original("selectors", selector_name)
            factory = _original("select", factory_name)
        except AttributeError:
            continue
        return _make_native(cls, factory)
    select_fn = _original("select", "select")  # pragma: no cover - Windows

    class _NativeSelect(selectors.SelectSelector):  # pragma: no cover
        def _select(self, r: Any, w: Any, _: Any, timeout: Any = None) -> Any:
            r, w, x = select_fn(r, w, w, timeout)
            return r, w + x, []

    return _NativeSelect()  # pragma: no cover


def _make_native(cls: type, factory: Callable[[], Any]) -> selectors.BaseSelector:
    class _Native(cls):
        def __init__(self) -> None:
            selectors._BaseSelectorImpl.__init__(self)
            self._selector = factory()

    return _Native()


def new_event_loop(kind: str = "auto") -> asyncio.AbstractEventLoop:
    """``uvloop`` (``auto`` when installed) or an asyncio loop on a native selector."""
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.SelectorEventLoop(_native_selector())


class LoopThread:
    """The worker's asyncio loop, running in its own OS thread."""

    def __init__(self, kind: str = "auto") -> None:
        import gevent

        self.kind = kind
        self.loop = new_event_loop(kind)
        self._pending: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._hub = gevent.get_hub()
        self._async = self._hub.loop.async_()
        self._async.start(self._run_pending)
        self._thread_done: Any = None

    @property
    def name(self) -> str:
        return type(self.loop).__module__.split(".")[0]

    def start(self) -> None:
        """Start the OS thread; returns once the loop is running."""
        import gevent.event

        started = gevent.event.Event()
        done = gevent.event.Event()
        self._thread_done = done
        allocate_lock = _original("_thread", "allocate_lock")
        ready = allocate_lock()
        ready.acquire()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(ready.release)
            try:
                self.loop.run_forever()
            finally:
                try:
                    self.loop.run_until_complete(self.loop.shutdown_asyncgens())
                finally:
                    self.loop.close()
                    self.to_hub(done.set)

        _original("_thread", "start_new_thread")(run, ())
        # The loop signals through the hub so this greenlet waits cooperatively.
        self.loop.call_soon_threadsafe(lambda: self.to_hub(started.set))
        started.wait()

    # -- the two crossings ------------------------------------------------------------

    def to_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in the loop thread (from a greenlet)."""
        self.loop.call_soon_threadsafe(fn, *args)

    def to_hub(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in the hub (from the loop thread). Thread-safe."""
        self._pending.append((fn, args))
        self._async.send()

    def _run_pending(self) -> None:
        pending = self._pending
        while pending:
            fn, args = pending.popleft()
            try:
                fn(*args)
            except Exception:  # one bad callback must not stall the others
                log.exception("error in a callback from the ASGI loop thread")

    # -- helpers --------------------------------------------------------------------------

    def run_coroutine(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        """Run ``coro`` on the loop; the calling greenlet waits cooperatively for its result."""
        import gevent.event

        result = gevent.event.AsyncResult()

        def finished(task: asyncio.Task) -> None:
            if task.cancelled():
                self.to_hub(result.set_exception, asyncio.CancelledError())
            elif task.exception() is not None:
                self.to_hub(result.set_exception, task.exception())
            else:
                self.to_hub(result.set, task.result())

        def start() -> None:
            task = self.loop.create_task(coro)
            task.add_done_callback(finished)

        self.to_loop(start)
        return result.get(timeout=timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and wait (cooperatively) for its thread to finish."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread_done is not None:
            self._thread_done.wait(timeout)
        self._async.stop()


_LOOP_THREAD: LoopThread | None = None


def get_loop_thread(kind: str = "auto") -> LoopThread:
    """The worker's loop thread, started on first use (after gevent patched)."""
    global _LOOP_THREAD
    if _LOOP_THREAD is None:
        thread = LoopThread(kind)
        thread.start()
        _LOOP_THREAD = thread
        log.debug("ASGI loop thread started (%s)", thread.name)
    return _LOOP_THREAD
