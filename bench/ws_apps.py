"""WebSocket echo applications for bench/websocket.py.

``echo`` is a WSGI app in gevent-websocket's style: it reads
``environ["wsgi.websocket"]``, which greenserve provides itself and gunicorn's
``GeventWebSocketWorker`` provides through gevent-websocket, so both servers run
the very same code. ``asgi_echo`` is a raw ASGI 3 app (no framework: the
server's WebSocket path is what gets measured). A plain ``GET`` gets the
13-byte hello of bench/apps.py from both, which the harness uses as its
readiness check; ``GET /greenserve-module`` answers the file of the
``greenserve`` package the serving process imported (empty when none), so the
harness can tell that the greenserve it measures is the checkout's.
"""

import sys

BODY = b"Hello, world!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]
MODULE_PATH = "/greenserve-module"


def _module_file() -> bytes:
    return str(getattr(sys.modules.get("greenserve"), "__file__", "") or "").encode()


def echo(environ, start_response):
    """Echo every message back until the client closes; hello for plain HTTP."""
    ws = environ.get("wsgi.websocket")
    if ws is None:
        if environ.get("PATH_INFO") == MODULE_PATH:
            body = _module_file()
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
            return [body]
        start_response("200 OK", HEADERS)
        return [BODY]
    while True:
        msg = ws.receive()
        if msg is None:
            break
        ws.send(msg)
    return []


async def _lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def asgi_echo(scope, receive, send):
    """Accept, then echo text and binary messages until the client disconnects."""
    kind = scope["type"]
    if kind == "lifespan":
        return await _lifespan(receive, send)
    if kind == "http":
        body = _module_file() if scope["path"] == MODULE_PATH else BODY
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return None
    message = await receive()  # websocket.connect
    if message["type"] != "websocket.connect":
        return None
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return None  # websocket.disconnect
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
