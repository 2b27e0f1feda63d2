"""The ASGI side of the conformance suite: the same routes as wsgi_echo.py.

- ``/echo``: echo every message; record the ``websocket.disconnect`` code under ``?marker=``;
- ``/close4000``: send "closing", then ``websocket.close`` with 4000 "bye now";
- ``/flood``: send 16 KiB messages until ``send()`` raises, then record the next ``receive()``;
- ``/forbidden``: ``websocket.close`` before accepting (a 403 on the still-HTTP connection);
- plain HTTP: 200 "http".
"""

from __future__ import annotations

from _markers import query, record


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "http":
        status, body = (403, b"forbidden\n") if scope["path"] == "/forbidden" else (200, b"http")
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    message = await receive()
    assert message["type"] == "websocket.connect", message
    marker = query(scope["query_string"].decode("latin-1")).get("marker", "")
    await ROUTES.get(scope["path"], echo)(receive, send, marker)


async def echo(receive, send, marker: str) -> None:
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            record(marker, {"closed": True, "code": message.get("code")})
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def close_4000(receive, send, marker: str) -> None:
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "closing"})
    await send({"type": "websocket.close", "code": 4000, "reason": "bye now"})


async def flood(receive, send, marker: str) -> None:
    await send({"type": "websocket.accept"})
    chunk = b"x" * 16384
    sent = 0
    try:
        while True:
            await send({"type": "websocket.send", "bytes": chunk})
            sent += 1
    except OSError as exc:  # ASGI: sending on a closed WebSocket raises an OSError
        after = await receive()
        record(marker, {"send_error": type(exc).__name__, "sent": sent, "after": after})


async def forbidden(receive, send, marker: str) -> None:
    await send({"type": "websocket.close"})


ROUTES = {"/echo": echo, "/close4000": close_4000, "/flood": flood, "/forbidden": forbidden}
