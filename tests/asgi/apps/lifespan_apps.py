"""ASGI applications with good and bad lifespan behaviour."""

from __future__ import annotations

import os

from _markers import now, record


async def _http(scope, send, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def startup_raises(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await receive()
        raise RuntimeError("database unreachable during startup")
    await _http(scope, send, b"ok")


async def startup_failed_message(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "config check failed: missing SECRET"})
        return
    await _http(scope, send, b"ok")


async def no_lifespan(scope, receive, send) -> None:
    """An application that supports only HTTP (raises on other scope types)."""
    if scope["type"] != "http":
        raise ValueError(f"unsupported scope type {scope['type']!r}")
    await _http(scope, send, b"no lifespan here, state=" + repr(sorted(scope.get("state", {}))).encode())


async def recording(scope, receive, send) -> None:
    """Records its startup and shutdown to files (ASGI_MARKERS) and shares state."""
    if scope["type"] == "lifespan":
        await receive()
        record(f"startup-{os.getpid()}.json", {"pid": os.getpid(), "at": now()})
        scope["state"]["token"] = "from-startup"
        await send({"type": "lifespan.startup.complete"})
        await receive()
        record(f"shutdown-{os.getpid()}.json", {"pid": os.getpid(), "at": now()})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await _http(scope, send, repr(sorted(scope.get("state", {}).items())).encode())
