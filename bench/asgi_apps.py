"""ASGI 3 applications for the benchmark (``bench.asgi_apps:hello``, ``bench.asgi_apps:sleep50``).

Raw ASGI, no framework: the server's ASGI path, not Starlette or FastAPI, is
what gets measured. Both answer exactly what ``bench.apps`` answers (13-byte
body, ``Content-Length`` set), so the harness checks them the same way.

Lifespan is answered (startup/shutdown complete) so neither server logs a
lifespan failure at startup.
"""

import asyncio

BODY = b"Hello, world!"
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(BODY)).encode())],
}
RESPONSE_BODY = {"type": "http.response.body", "body": BODY, "more_body": False}


async def _lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def hello(scope, receive, send):
    """13-byte body, Content-Length set: the classic hello-world request."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await send(START)
    await send(RESPONSE_BODY)


async def sleep50(scope, receive, send):
    """Waits 50 ms (``asyncio.sleep``) before answering hello."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await asyncio.sleep(0.05)
    await send(START)
    await send(RESPONSE_BODY)
