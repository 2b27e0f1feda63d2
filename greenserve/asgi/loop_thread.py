"""One asyncio event loop per worker, in a real OS thread, and the two crossings.

After ``gevent.monkey.patch_all()`` a ``threading.Thread`` is a greenlet, so
the loop thread is started with the original ``_thread.start_new_thread``.
That thread runs a gevent hub of its own, with the asyncio loop in its main
greenlet: code that "starts a thread" from async code (FastAPI's ``def``
endpoints, ``run_in_executor``, ``anyio.to_thread``, asgiref's
``sync_to_async``) gets a greenlet in the loop thread, and its blocking I/O
yields to the loop instead of stopping it. The loop's selector is the
system's epoll (or kqueue): it polls without blocking and, when nothing is
ready, waits for the epoll descriptor itself through the thread's hub, so
those greenlets run meanwhile.

uvloop (``--loop uvloop``) blocks inside libuv, where no greenlet can run:
it is for purely asynchronous applications, and a thread started from its
loop is refused with a clear error instead of hanging.

Exactly two ways to cross between the worker's greenlets and the loop:

- greenlet -> loop: :meth:`LoopThread.to_loop` (``loop.call_soon_threadsafe``);
- loop -> greenlet: :meth:`LoopThread.to_hub`, which queues a callback and
  wakes the worker's hub through one gevent async watcher; the callback runs
  in the hub's thread, where it may set gevent events or wake greenlets.

A greenlet never blocks the hub waiting on a thread: it waits on a gevent
event that a ``to_hub`` callback sets.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import logging
import selectors
import threading
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger("greenserve.error")

#: Calls queued for the loop that wake it before the hub's iteration ends.
#: With a thousand busy connections one hub iteration lasts tens of
#: milliseconds; waiting for its end delayed every request by as much
#: (measured: 6.6k -> 8.4k req/s on bench asgi-sleep). Small batches of
#: fast requests still cost one wake-up each.
_WAKE_BATCH = 64


def _original(module: str, name: str) -> Any:
    from gevent import monkey

    return monkey.get_original(module, name)


def _hub_selector() -> selectors.BaseSelector:
    """epoll/kqueue that waits through the calling thread's gevent hub when idle."""
    for selector_name, factory_name in (("EpollSelector", "epoll"), ("KqueueSelector", "kqueue")):
        try:
            cls = _original("selectors", selector_name)
            factory = _original("select", factory_name)
        except AttributeError:
            continue
        return _make_hub_selector(cls, factory)
    # Elsewhere (Windows) gevent's own selector does the same, less cheaply.
    return selectors.DefaultSelector()  # pragma: no cover


def _make_hub_selector(cls: type, factory: Callable[[], Any]) -> selectors.BaseSelector:
    from gevent import Timeout, get_hub

    class _HubSelector(cls):
        def __init__(self) -> None:
            selectors._BaseSelectorImpl.__init__(self)
            self._selector = factory()
            self._watcher: Any = None
            #: Watchers the hub keeps for itself (counted once, when the loop starts).
            self._idle_watchers = 0

        def hub_started(self) -> None:
            self._idle_watchers = get_hub().loop.activecnt

        def select(self, timeout: float | None = None) -> list:
            if timeout is not None and timeout <= 0:
                return super().select(0)
            hub = get_hub()
            loop = hub.loop
            if loop.activecnt <= self._idle_watchers and not loop._callbacks:
                # No greenlet of this thread waits on anything: block in epoll itself.
                return super().select(timeout)
            # Wait through this thread's hub, so its greenlets (code the app
            # runs "in threads") run meanwhile. The epoll descriptor is readable
            # when one of its sockets is (level-triggered: at once if one is).
            if self._watcher is None:
                self._watcher = hub.loop.io(self._selector.fileno(), 1)
            timer = Timeout._start_new_or_dummy(timeout)
            try:
                hub.wait(self._watcher)
            except Timeout as exc:
                if exc is not timer:
                    raise
            finally:
                timer.close()
            return super().select(0)

    return _HubSelector()


def new_event_loop(kind: str = "auto") -> asyncio.AbstractEventLoop:
    """An asyncio loop on the hub-aware selector, or uvloop for ``kind="uvloop"``."""
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return loop_class()(_hub_selector())


#: The slots asyncio's handles have had since Python 3.7 (what the lean handles fill in).
_HANDLE_SLOTS = (
    *("_callback", "_args", "_cancelled", "_loop"),
    *("_source_traceback", "_repr", "__weakref__", "_context"),
)
_TIMER_SLOTS = ("_scheduled", "_when")


def loop_class() -> type[asyncio.SelectorEventLoop]:
    """The loop class for the loop thread: :class:`_LeanLoop` where it behaves as asyncio's own.

    Decided on behaviour, once per process: the stock loop must make plain
    :class:`asyncio.Handle` and :class:`asyncio.TimerHandle` objects with the
    slots the lean handles fill in. Where a Python makes something else (3.14's
    ``call_soon_threadsafe`` returns a lock-guarded handle, gh-128340), or the
    slots changed, the stock loop is used: a few percent slower, never wrong.
    """
    global _LOOP_CLASS
    if _LOOP_CLASS is None:
        plain, threadsafe_plain = _stock_handle_kinds()
        if not plain:
            _LOOP_CLASS = asyncio.SelectorEventLoop
        elif threadsafe_plain:
            _LOOP_CLASS = _LeanLoop
        else:  # CPython guards call_soon_threadsafe's handle: keep its own
            _LOOP_CLASS = _LeanLoopStockThreadsafe
    return _LOOP_CLASS


_LOOP_CLASS: type[asyncio.SelectorEventLoop] | None = None


def _stock_handle_kinds() -> tuple[bool, bool]:
    """Whether the stock selector loop's call_soon/call_at, and its call_soon_threadsafe,
    make exactly the handles the lean loop imitates."""
    if tuple(getattr(asyncio.Handle, "__slots__", ())) != _HANDLE_SLOTS:
        return False, False
    if tuple(getattr(asyncio.TimerHandle, "__slots__", ())) != _TIMER_SLOTS:
        return False, False
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    try:
        soon = type(loop.call_soon(_nothing))
        timer = type(loop.call_at(loop.time() + 3600, _nothing))
        threadsafe = type(loop.call_soon_threadsafe(_nothing))
    finally:
        loop.close()
    plain = soon is asyncio.Handle and timer is asyncio.TimerHandle
    return plain, plain and threadsafe is asyncio.Handle


def _nothing() -> None:
    """A callback that is never run (see _stock_handle_kinds)."""


class _LeanHandle(asyncio.Handle):
    """A Handle made without asking the loop for its debug mode (the loop asked already)."""

    __slots__ = ()

    def __init__(self, callback: Callable[..., Any], args: tuple, loop: Any, context: Any = None) -> None:
        self._context = contextvars.copy_context() if context is None else context
        self._loop = loop
        self._callback = callback
        self._args = args
        self._cancelled = False
        self._repr = None
        self._source_traceback = None


class _LeanTimerHandle(asyncio.TimerHandle):
    """A TimerHandle made the same way, compared without an isinstance() call.

    The timer heap compares handles about ten times per timer with a thousand
    timers pending: on bench asgi-sleep that was the loop thread's costliest call.
    """

    __slots__ = ()

    def __init__(
        self, when: float, callback: Callable[..., Any], args: tuple, loop: Any, context: Any = None
    ) -> None:
        _LeanHandle.__init__(self, callback, args, loop, context)  # type: ignore[arg-type]  # same slots
        self._when = when
        self._scheduled = False

    def __lt__(self, other: Any) -> bool:
        try:
            return self._when < other._when
        except AttributeError:
            return NotImplemented


class _LeanLoopStockThreadsafe(asyncio.SelectorEventLoop):
    """The selector loop with one Python call per ``call_soon`` and ``call_at``.

    asyncio's loop is pure Python: every callback it schedules goes through
    ``call_soon`` -> ``_check_closed`` -> ``_call_soon`` -> ``Handle.__init__`` ->
    ``get_debug``. Every request pays that a few times (its task's first step,
    each future it awaits, each timer). In debug mode, or once closed, the
    stock methods run, with their checks and messages.
    """

    def call_soon(  # type: ignore[override]
        self, callback: Callable[..., Any], *args: Any, context: Any = None
    ) -> asyncio.Handle:
        if self._debug or self._closed:  # type: ignore[attr-defined]
            return super().call_soon(callback, *args, context=context)
        handle = _LeanHandle(callback, args, self, context)
        self._ready.append(handle)  # type: ignore[attr-defined]
        return handle

    def call_at(  # type: ignore[override]
        self, when: float, callback: Callable[..., Any], *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        if self._debug or self._closed or when is None:  # type: ignore[attr-defined]
            return super().call_at(when, callback, *args, context=context)
        timer = _LeanTimerHandle(when, callback, args, self, context)
        heapq.heappush(self._scheduled, timer)  # type: ignore[attr-defined]
        timer._scheduled = True
        return timer


class _LeanLoop(_LeanLoopStockThreadsafe):
    """... and ``call_soon_threadsafe`` too, where the stock one makes a plain Handle (up to 3.13)."""

    def call_soon_threadsafe(  # type: ignore[override]
        self, callback: Callable[..., Any], *args: Any, context: Any = None
    ) -> asyncio.Handle:
        if self._debug or self._closed:  # type: ignore[attr-defined]
            return super().call_soon_threadsafe(callback, *args, context=context)
        handle = self.call_soon(callback, *args, context=context)
        self._write_to_self()  # type: ignore[attr-defined]  # wake the loop's select()
        return handle


_get_ident = None
_no_threads_from: set[int] = set()


def _thread_start_hook() -> str:
    """The private ``threading`` function that ``Thread.start`` calls to start an OS thread.

    ``_start_new_thread`` up to Python 3.12, ``_start_joinable_thread`` since
    3.13. Read from ``Thread.start``'s own code, so the guard wraps what this
    interpreter really calls; on one that calls neither, guarding silently
    would let a thread hang the loop, so this refuses to start instead.
    """
    import sys

    called = threading.Thread.start.__code__.co_names
    for name in ("_start_joinable_thread", "_start_new_thread"):
        if name in called and hasattr(threading, name):
            return name
    raise RuntimeError(
        f"--loop uvloop cannot refuse threads started from its loop on Python "
        f"{sys.version.split()[0]}: threading.Thread.start calls neither _start_joinable_thread "
        f"nor _start_new_thread; serve this application with --loop asyncio"
    )


def _refuse_threads_from_uvloop() -> None:
    """Make ``threading`` refuse to start a thread from a uvloop loop thread (it would hang)."""
    global _get_ident
    if _get_ident is not None:
        return
    import functools

    hook = _thread_start_hook()
    start = getattr(threading, hook)

    @functools.wraps(start)
    def refuse_from_uvloop(*args: Any, **kwargs: Any) -> Any:
        if _get_ident is not None and _get_ident() in _no_threads_from:
            raise RuntimeError(
                "a thread was started from the ASGI loop, which runs uvloop: threads cannot "
                "run there under gevent; serve this application with --loop asyncio"
            )
        return start(*args, **kwargs)

    setattr(threading, hook, refuse_from_uvloop)
    _get_ident = _original("_thread", "get_ident")


class LoopThread:
    """The worker's asyncio loop, running in its own OS thread."""

    def __init__(self, kind: str = "auto") -> None:
        import gevent
        import gevent.event

        self.kind = kind
        self.loop = new_event_loop(kind)
        self._started = gevent.event.Event()
        self._pending: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._to_loop: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._loop_wake_pending = False
        self._hub = gevent.get_hub()
        self._async = self._hub.loop.async_()
        self._async.start(self._run_pending)
        self._thread_done: Any = None

    @property
    def name(self) -> str:
        return "uvloop" if self.kind == "uvloop" else "asyncio"

    def start(self) -> None:
        """Start the OS thread; returns once the loop is running."""
        import gevent.event

        started = self._started
        done = gevent.event.Event()
        self._thread_done = done
        uvloop = self.kind == "uvloop"
        if uvloop:
            _refuse_threads_from_uvloop()

        def run() -> None:
            import gevent

            gevent.get_hub()  # this thread's own hub, for the greenlets of offloaded work
            hub_started = getattr(getattr(self.loop, "_selector", None), "hub_started", None)
            if hub_started is not None:
                hub_started()
            if uvloop:
                assert _get_ident is not None
                _no_threads_from.add(_get_ident())
            asyncio.set_event_loop(self.loop)
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

    def wait_started(self) -> None:
        self._started.wait()

    # -- the two crossings ------------------------------------------------------------

    def to_loop(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in the loop thread (from a greenlet).

        Batched: one ``call_soon_threadsafe`` (one write to the loop's wake-up
        pipe) for what the hub's current iteration queues, and one more for
        every ``_WAKE_BATCH`` calls, so a long iteration does not hold them back.
        """
        queue = self._to_loop
        queue.append((fn, args))
        if not self._loop_wake_pending:
            self._loop_wake_pending = True
            # Wake the loop once the hub has run every greenlet that is ready:
            # one wake-up (and one hand-over of the GIL) for the whole batch...
            self._hub.loop.run_callback(self._wake_loop)
        elif len(queue) % _WAKE_BATCH == 0:
            # ...unless the batch grows large: the loop starts on it now.
            self._wake_loop()

    def _wake_loop(self) -> None:
        self.loop.call_soon_threadsafe(self._run_to_loop)

    def _run_to_loop(self) -> None:
        """In the loop thread: everything greenlets asked for since the last wake-up."""
        self._loop_wake_pending = False  # first: what is added from now on asks again
        _run_queued(self._to_loop, "on the ASGI loop thread")

    def to_hub(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` in the hub (from the loop thread). Thread-safe."""
        self._pending.append((fn, args))
        self._async.send()

    def _run_pending(self) -> None:
        # What arrives meanwhile has sent the watcher again: it runs next time round.
        _run_queued(self._pending, "from the ASGI loop thread")

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
        try:  # join the executor's greenlets in their own thread, as asyncio.run does
            self.run_coroutine(self.loop.shutdown_default_executor(), timeout=timeout)
        except Exception:
            log.debug("ASGI loop: default executor did not shut down cleanly", exc_info=True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread_done is not None:
            self._thread_done.wait(timeout)
        self._async.stop()


def resolve_future(future: asyncio.Future, value: Any) -> None:
    """In the loop thread: complete ``future`` unless the application already cancelled it.

    What a ``to_loop`` call runs to answer an application's ``receive()`` or ``send()``.
    """
    if not future.done():
        future.set_result(value)


def fail_future(future: asyncio.Future, exc: BaseException) -> None:
    """In the loop thread: fail ``future`` unless the application already cancelled it."""
    if not future.done():
        future.set_exception(exc)


def _run_queued(queue: deque[tuple[Callable[..., Any], tuple[Any, ...]]], where: str) -> None:
    """Run the calls queued so far, each on its own.

    Only those: the other thread keeps adding while these run, and draining
    "until empty" could keep this thread from its own events (the hub from
    polling its sockets, the loop from its timers) for a long time.
    """
    for _ in range(len(queue)):
        fn, args = queue.popleft()
        try:
            fn(*args)
        except Exception:  # one bad callback must not stall the others
            log.exception("error in a callback %s", where)


_LOOP_THREAD: LoopThread | None = None


def get_loop_thread(kind: str = "auto") -> LoopThread:
    """The worker's loop thread, started on first use (after gevent patched)."""
    global _LOOP_THREAD
    thread = _LOOP_THREAD
    if thread is None:
        # Published before start() yields: greenlets arriving meanwhile wait for
        # this one instead of each starting a thread of their own.
        thread = _LOOP_THREAD = LoopThread(kind)
        thread.start()
        log.debug("ASGI loop thread started (%s)", thread.name)
    else:
        thread.wait_started()
    return thread
