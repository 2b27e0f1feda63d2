"""The blocker report: which code, serving which request, blocked the event loop, and for how long.

Under gevent every connection of a worker shares one thread. A call that
does not yield (a CPU loop, a C library doing blocking I/O: psycopg2 without
psycogreen, a DNS lookup in a C extension) stops every other request of the
worker until it returns. This finds the culprit without a debugger:

- a greenlet on the event loop records the time every ``threshold / 2``;
- a real OS thread (not a greenlet: it must run while the loop is stuck)
  checks that time; when it is older than ``threshold``, the loop is blocked:
  it takes the stack of the loop's thread right then (``sys._current_frames``:
  the code that is blocking), and the request of the connection that code
  serves;
- when the loop runs again it logs one warning with the duration, the
  request and the stack, and counts it for ``--metrics-bind``. Warnings are
  rate-limited (one per ``quiet`` seconds; the others are counted and said).

The cost while nothing blocks: one timer on the loop and one thread that
wakes once or twice per threshold, when a block could first be seen. It is
not ``--timeout``: that kills a worker blocked for good; this reports the
blocks that end.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from time import monotonic
from types import FrameType
from typing import Any

import gevent
from gevent import monkey

log = logging.getLogger("greenserve.error")

#: A block that lasts longer than this is reported while it lasts (it may never end).
_STILL_BLOCKED = 10.0


class BlockMonitor:
    """Watches one worker's event loop (see the module docstring)."""

    def __init__(
        self,
        threshold: float,
        describe: Callable[[FrameType], str],
        on_block: Callable[[], None] | None = None,
        quiet: float = 10.0,
    ) -> None:
        self.threshold = threshold
        #: Names the request the blocking code serves, from its frames ("" if none).
        self.describe = describe
        #: Counted once per block (metrics).
        self.on_block = on_block
        self.quiet = quiet
        self._beat = monotonic()
        # The OS thread's id (gevent's patched get_ident names greenlets).
        self._loop_thread = monkey.get_original("_thread", "get_ident")()
        self._sleep = monkey.get_original("time", "sleep")
        self._stop = False
        self._greenlet: Any = None
        #: The block being measured: (started, stack, request) while the loop is stuck.
        self._current: tuple[float, str, str] | None = None
        self._last_report = -quiet
        self._suppressed = 0
        self._reported_still = False

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._tick)
        monkey.get_original("_thread", "start_new_thread")(self._watch, ())

    def stop(self) -> None:
        self._stop = True
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    # -- on the event loop ---------------------------------------------------------------

    def _tick(self) -> None:
        interval = self.threshold / 2
        while True:
            self._beat = monotonic()
            gevent.sleep(interval)

    # -- in the watching thread ------------------------------------------------------------

    def _watch(self) -> None:
        threshold = self.threshold
        step = threshold / 4
        margin = threshold / 20
        while not self._stop:
            beat = self._beat
            now = monotonic()
            current = self._current
            if now - beat > threshold:
                if current is None:
                    self._current = (beat, *self._capture())
                elif not self._reported_still and now - current[0] > _STILL_BLOCKED:
                    self._reported_still = True
                    self._report(current, now - current[0], ended=False)
                self._sleep(step)  # until the loop runs again
                continue
            if current is not None:
                # The loop ran again: the block lasted until the beat after it.
                self._current = None
                if not self._reported_still:
                    self._report(current, beat - current[0], ended=True)
                self._reported_still = False
            # No block can be seen before the beat is ``threshold`` old: sleep until then
            # (not every ``step``: an idle worker woke 63 times a second, now 33).
            self._sleep(beat + threshold - now + margin)

    def _capture(self) -> tuple[str, str]:
        frame = sys._current_frames().get(self._loop_thread)
        if frame is None:  # pragma: no cover - the loop's thread always has a frame
            return "", ""
        try:
            request = self.describe(frame)
        except Exception:  # noqa: BLE001 - the report must not fail for lack of a name
            request = ""
        return "".join(traceback.format_stack(frame)), request

    def _report(self, block: tuple[float, str, str], duration: float, ended: bool) -> None:
        if self.on_block is not None:
            self.on_block()
        now = monotonic()
        if now - self._last_report < self.quiet:
            self._suppressed += 1
            return
        self._last_report = now
        suppressed, self._suppressed = self._suppressed, 0
        _, stack, request = block
        what = f"blocked for {duration:.3f} s" if ended else f"blocked for {duration:.1f} s so far"
        more = f" ({suppressed} more blocks since the last report)" if suppressed else ""
        log.warning(
            "Event loop %s (--block-threshold %g s)%s, serving %s; other requests of this worker "
            "waited meanwhile. The blocking code:\n%s",
            what,
            self.threshold,
            more,
            request or "no request (server code)",
            stack.rstrip(),
        )


def request_in_frames(frame: FrameType | None) -> str:
    """``GET /path`` of the greenserve connection whose request the frames serve, found in their locals."""
    from greenserve.logs import request_summary
    from greenserve.worker.connection import Connection

    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, Connection):
            request = owner.exchange.request
            if request is not None:
                return request_summary(request.method, request.target)
        frame = frame.f_back
    return ""
