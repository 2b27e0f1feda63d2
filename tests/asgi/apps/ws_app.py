"""A plain ASGI WebSocket application, one behaviour per path."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from _markers import now, record


def query(scope) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(scope["query_string"].decode("latin-1")).items()}


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        message = await receive()
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]})
        await send({"type": "http.response.body", "body": b"http"})
        return
    assert scope["type"] == "websocket", scope["type"]
    message = await receive()
    assert message["type"] == "websocket.connect", message
    handler = ROUTES.get(scope["path"], echo)
    await handler(scope, receive, send)


async def echo(scope, receive, send) -> None:
    """Echo text and bytes; record the close code the client sent."""
    await send({"type": "websocket.accept"})
    marker = query(scope).get("marker", "")
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            record(marker, {"code": message.get("code"), "at": now()})
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def subprotocol(scope, receive, send) -> None:
    offered = scope.get("subprotocols", [])
    chosen = next((name for name in ("chat.v2", "chat.v1") if name in offered), None)
    await send({"type": "websocket.accept", "subprotocol": chosen})
    await send({"type": "websocket.send", "text": json.dumps({"offered": offered, "chosen": chosen})})
    message = await receive()
    assert message["type"] == "websocket.disconnect"


async def close_4001(scope, receive, send) -> None:
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "closing"})
    await send({"type": "websocket.close", "code": 4001, "reason": "go away"})


async def deny(scope, receive, send) -> None:
    await send({"type": "websocket.close"})


async def deny_401(scope, receive, send) -> None:
    await send(
        {
            "type": "websocket.http.response.start",
            "status": 401,
            "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Bearer")],
        }
    )
    await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
    await send({"type": "websocket.http.response.body", "body": b"token"})


async def raise_before_accept(scope, receive, send) -> None:
    raise RuntimeError("websocket app failed before accept")


async def scope_echo(scope, receive, send) -> None:
    await send({"type": "websocket.accept"})
    data = {
        key: (value.decode("latin-1") if isinstance(value, bytes) else value)
        for key, value in scope.items()
        if key not in ("headers", "state", "asgi")
    }
    data["has_method"] = "method" in scope
    data["asgi"] = scope["asgi"]
    await send({"type": "websocket.send", "text": json.dumps(data)})
    await receive()


ROUTES = {
    "/echo": echo,
    "/subprotocol": subprotocol,
    "/close4001": close_4001,
    "/deny": deny,
    "/deny401": deny_401,
    "/raise-before-accept": raise_before_accept,
    "/scope": scope_echo,
}
