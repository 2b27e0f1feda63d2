"""ASGI endpoints that outlive their client: they record when they were cancelled, or how they ended."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs

from _markers import now, record


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    query = {key: values[-1] for key, values in parse_qs(scope["query_string"].decode()).items()}
    marker = query.get("marker", "")
    started = now()
    record(marker + ".started", {"at": started})
    try:
        if scope["path"] == "/ignore":
            await asyncio.sleep(30)  # never looks at receive(): only cancellation stops it
        elif scope["path"] == "/listen":
            while True:  # polls for the disconnect, as a polite streaming endpoint does
                message = await receive()
                if message["type"] == "http.disconnect":
                    record(marker, {"outcome": "disconnect", "at": now(), "started": started})
                    return
    except asyncio.CancelledError:
        record(marker, {"outcome": "cancelled", "at": now(), "started": started})
        raise
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"late"})
