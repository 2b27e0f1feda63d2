"""The ASGI loop thread's event loop keeps asyncio's contract.

greenserve's loop schedules callbacks and timers with fewer Python calls than
asyncio's own selector loop (see ``greenserve.asgi.loop_thread._LeanLoop``);
these tests hold it to what applications rely on: order, arguments, contexts,
cancellation, and the stock checks in debug mode and once the loop is closed.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Iterator

import pytest

from greenserve.asgi.loop_thread import new_event_loop

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = new_event_loop()
    try:
        yield loop
    finally:
        if not loop.is_closed():
            loop.close()


def test_callbacks_run_in_order_with_their_arguments_and_context(loop):
    seen: list[tuple[str, int, str]] = []
    context = contextvars.copy_context()
    context.run(request_id.set, "req-7")
    loop.call_soon(lambda n: seen.append(("a", n, request_id.get())), 1)
    loop.call_soon(lambda n: seen.append(("b", n, request_id.get())), 2, context=context)
    handle = loop.call_soon(lambda n: seen.append(("c", n, request_id.get())), 3)
    loop.call_soon(lambda n: seen.append(("d", n, request_id.get())), 4)
    handle.cancel()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert seen == [("a", 1, "-"), ("b", 2, "req-7"), ("d", 4, "-")]


def test_timers_fire_by_deadline_and_cancelled_ones_never(loop):
    fired: list[str] = []
    now = loop.time()
    loop.call_at(now + 0.03, fired.append, "third")
    loop.call_later(0.01, fired.append, "first")
    cancelled = loop.call_later(0.015, fired.append, "cancelled")
    loop.call_at(now + 0.02, fired.append, "second")
    cancelled.cancel()
    loop.call_later(0.05, loop.stop)
    loop.run_forever()
    assert fired == ["first", "second", "third"]
    assert cancelled.cancelled()


def test_many_pending_timers_fire_in_deadline_order(loop):
    """A heap of a few hundred timers, as a busy worker has."""
    fired: list[float] = []
    base = loop.time() + 0.01
    deadlines = [base + (n * 37 % 50) / 1000 for n in range(300)]
    for when in deadlines:
        loop.call_at(when, fired.append, when)
    loop.call_at(base + 0.06, loop.stop)
    loop.run_forever()
    assert fired == sorted(deadlines)


def test_sleeping_tasks_each_wake_after_their_own_delay(loop):
    slept: list[tuple[float, float]] = []

    async def sleeper(delay: float) -> None:
        started = loop.time()
        await asyncio.sleep(delay)
        slept.append((delay, loop.time() - started))

    async def main() -> None:
        await asyncio.gather(*(sleeper((n % 50) / 1000) for n in range(300)))

    loop.run_until_complete(main())
    assert len(slept) == 300
    assert all(elapsed >= delay - 0.002 for delay, elapsed in slept)  # the clock's resolution


def test_debug_mode_keeps_asyncios_checks(loop):
    loop.set_debug(True)
    errors: list[BaseException] = []

    def from_another_thread() -> None:
        try:
            loop.call_soon(print)
        except RuntimeError as exc:
            errors.append(exc)

    async def main() -> None:
        thread = threading.Thread(target=from_another_thread)
        thread.start()
        thread.join()

    loop.run_until_complete(main())
    assert errors and "thread" in str(errors[0])


def test_a_closed_loop_refuses_callbacks_and_timers(loop):
    loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_soon(print)
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_later(1, print)


def test_call_soon_threadsafe_wakes_a_waiting_loop(loop):
    """What greenlets use to hand work to the loop thread: the loop wakes at once."""
    got: list[str] = []

    def other_thread() -> None:
        time.sleep(0.05)
        loop.call_soon_threadsafe(got.append, "woken")
        loop.call_soon_threadsafe(loop.stop)

    safety = loop.call_later(5, loop.stop)
    thread = threading.Thread(target=other_thread)
    started = time.monotonic()
    thread.start()
    loop.run_forever()
    thread.join(5)
    safety.cancel()
    assert got == ["woken"]
    assert time.monotonic() - started < 2


def test_which_loop_class_each_python_gets():
    """The lean loop is chosen by what the stock loop does, and the choice is the expected one.

    Up to 3.13 asyncio's handles are plain Handle objects: the whole lean loop.
    From 3.14 ``call_soon_threadsafe`` returns a lock-guarded handle (gh-128340):
    the lean call_soon/call_at, but asyncio's own call_soon_threadsafe.
    """
    import sys

    from greenserve.asgi import loop_thread

    chosen = loop_thread.loop_class()
    if sys.version_info < (3, 14):
        assert chosen is loop_thread._LeanLoop
    else:
        assert chosen is loop_thread._LeanLoopStockThreadsafe
        assert "call_soon_threadsafe" not in vars(chosen)
    loop = new_event_loop()
    try:
        assert type(loop) is chosen
        handle = loop.call_soon_threadsafe(lambda: None)
        stock = asyncio.SelectorEventLoop()
        try:
            # The same kind of handle as the stock loop's (a lean one is a plain Handle's subclass).
            assert isinstance(handle, type(stock.call_soon_threadsafe(lambda: None)))
        finally:
            stock.close()
    finally:
        loop.close()
