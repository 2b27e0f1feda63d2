"""ASGI applications (FastAPI, Starlette, ...) on greenserve's gevent workers.

Each worker runs one asyncio loop in a real OS thread; each request's
greenlet waits cooperatively while the application runs there.

Importing this package imports nothing else: :class:`ASGIBridge` (which needs
gevent, and asyncio) is loaded on first use, so ``import greenserve.asgi``
before gevent has patched the process cannot import gevent too early.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from greenserve.asgi.bridge import ASGIBridge

__all__ = ["ASGIBridge"]


def __getattr__(name: str) -> Any:
    if name == "ASGIBridge":
        from greenserve.asgi.bridge import ASGIBridge

        return ASGIBridge
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
