"""ASGI lifespan: ``startup`` before a worker accepts, ``shutdown`` after it drains.

``--lifespan on`` requires the protocol: a failed or missing startup stops
the worker with the app-load exit code, so the master stops instead of
respawning. ``auto`` treats an application that raises or returns at once on
the lifespan scope as one without lifespan support. ``off`` never sends it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gevent import Timeout
from gevent.event import AsyncResult

from greenserve.asgi.loop_thread import LoopThread
from greenserve.errors import AppLoadError

log = logging.getLogger("greenserve.error")

_UNSUPPORTED = "unsupported"


class Lifespan:
    """Runs one application's lifespan task on the worker's loop thread."""

    def __init__(self, app: Any, loop_thread: LoopThread, mode: str, state: dict[str, Any]) -> None:
        self.app = app
        self.loop_thread = loop_thread
        self.mode = mode
        self.state = state
        self.supported = False
        self._startup = AsyncResult()
        self._shutdown = AsyncResult()
        self._shutdown_requested: asyncio.Event | None = None
        self._phase = "startup"

    # -- the application's side (loop thread) ------------------------------------------

    async def _receive(self) -> dict[str, Any]:
        if self._phase == "startup":
            self._phase = "running"
            return {"type": "lifespan.startup"}
        assert self._shutdown_requested is not None
        await self._shutdown_requested.wait()
        return {"type": "lifespan.shutdown"}

    async def _send(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        to_hub = self.loop_thread.to_hub
        if kind == "lifespan.startup.complete":
            to_hub(self._startup.set, "complete")
        elif kind == "lifespan.startup.failed":
            to_hub(self._startup.set, f"failed: {message.get('message', '')}")
        elif kind == "lifespan.shutdown.complete":
            to_hub(self._shutdown.set, "complete")
        elif kind == "lifespan.shutdown.failed":
            to_hub(self._shutdown.set, f"failed: {message.get('message', '')}")
        else:
            raise RuntimeError(f"unexpected ASGI lifespan message {kind!r}")

    def _start(self) -> None:
        self._shutdown_requested = asyncio.Event()
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        task = asyncio.get_running_loop().create_task(self.app(scope, self._receive, self._send))
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        error = None if task.cancelled() else task.exception()
        self.loop_thread.to_hub(self._finished, error)

    def _finished(self, error: BaseException | None) -> None:
        """In the hub: the lifespan task ended (normally after shutdown)."""
        if not self._startup.ready():
            self._startup.set(_UNSUPPORTED if error is None else error)
        if not self._shutdown.ready():
            self._shutdown.set("complete" if error is None else error)

    # -- the worker's side (greenlet) ----------------------------------------------------

    def startup(self) -> None:
        """Run startup; returns when it completed. Raises AppLoadError when it failed."""
        if self.mode == "off":
            return
        self.loop_thread.to_loop(self._start)
        outcome = self._startup.get()
        if outcome == "complete":
            self.supported = True
            log.info("ASGI lifespan startup complete")
            return
        if isinstance(outcome, BaseException) or outcome == _UNSUPPORTED:
            if self.mode == "auto":
                if isinstance(outcome, BaseException):
                    log.info("ASGI lifespan not supported by the application (%r); continuing", outcome)
                return
            detail = repr(outcome) if isinstance(outcome, BaseException) else "it returned without completing"
            raise AppLoadError(f"ASGI lifespan startup failed: {detail}")
        raise AppLoadError(f"ASGI lifespan startup {outcome}")

    def shutdown(self, timeout: float) -> None:
        """Run shutdown (after the worker drained its connections), within ``timeout``."""
        if not self.supported:
            return
        event = self._shutdown_requested
        if event is not None:
            self.loop_thread.to_loop(event.set)
        try:
            outcome = self._shutdown.get(timeout=timeout)
        except Timeout:
            outcome = "timed out"
        if outcome != "complete":
            log.warning("ASGI lifespan shutdown %s", outcome)
        else:
            log.info("ASGI lifespan shutdown complete")
