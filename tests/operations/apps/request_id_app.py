"""What the request-id tests serve: each answer says which id the application was given.

``app`` (WSGI) answers JSON ``{"id": environ.get("greenserve.request_id"), "has_key": ...,
"header": HTTP_X_REQUEST_ID, "pid": ...}``; ``/own`` sets its own ``X-Request-ID``;
``/error`` raises (the server's 500); ``/ws`` is a WebSocket (``wsgi.websocket``) that sends
the id as its first message.

``asgi_app`` answers the same JSON from ``scope["extensions"]``, for ``http`` and
``websocket`` scopes.
"""

import json
import os


def _id_from_environ(environ):
    return {
        "id": environ.get("greenserve.request_id"),
        "has_key": "greenserve.request_id" in environ,
        "header": environ.get("HTTP_X_REQUEST_ID"),
        "pid": os.getpid(),
    }


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/error":
        raise RuntimeError("the application failed on purpose")
    if path == "/ws":
        ws = environ["wsgi.websocket"]
        ws.send(json.dumps(_id_from_environ(environ)))
        while ws.receive() is not None:
            pass
        return []
    body = json.dumps(_id_from_environ(environ)).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    if path == "/own":
        headers.append(("X-Request-ID", "set-by-the-app"))
    start_response("200 OK", headers)
    return [body]


def _id_from_scope(scope):
    extension = scope.get("extensions", {}).get("greenserve.request_id")
    headers = dict(scope["headers"])
    header = headers.get(b"x-request-id")
    return {
        "id": extension["id"] if extension is not None else None,
        "has_key": extension is not None,
        "header": header.decode("latin-1") if header is not None else None,
        "pid": os.getpid(),
    }


async def asgi_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(_id_from_scope(scope))})
        while (await receive())["type"] != "websocket.disconnect":
            pass
        return
    body = json.dumps(_id_from_scope(scope)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
