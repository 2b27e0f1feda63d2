"""The WSGI side of the conformance suite: ``environ["wsgi.websocket"]`` (gevent-websocket's API).

Routes (the same as asgi_echo.py's):

- ``/echo``: echo every message as it came (text or binary); when ``receive()``
  returns None (the WebSocket closed), record it under ``?marker=``;
- ``/close4000``: send "closing", then close with 4000 "bye now";
- ``/flood``: send 16 KiB messages until sending fails, then record what
  ``receive()`` returns;
- ``/forbidden``: answer 403 without touching ``wsgi.websocket`` (declined);
- anything else over plain HTTP: 200 "http".
"""

from __future__ import annotations

from _markers import query, record


def app(environ, start_response):
    path = environ["PATH_INFO"]
    ws = environ.get("wsgi.websocket")
    if path == "/forbidden":
        start_response("403 Forbidden", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return [b"forbidden\n"]
    if ws is None:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "4")])
        return [b"http"]
    marker = query(environ.get("QUERY_STRING", "")).get("marker", "")
    ROUTES.get(path, echo)(ws, marker)
    return []


def echo(ws, marker: str) -> None:
    while True:
        message = ws.receive()
        if message is None:
            record(marker, {"closed": True})
            return
        ws.send(message)


def close_4000(ws, marker: str) -> None:
    ws.send("closing")
    ws.close(4000, "bye now")


def flood(ws, marker: str) -> None:
    chunk = b"x" * 16384
    sent = 0
    try:
        while True:
            ws.send(chunk)
            sent += 1
    except Exception as exc:  # gevent-websocket's WebSocketError
        record(marker, {"send_error": type(exc).__name__, "sent": sent, "after": ws.receive()})


ROUTES = {"/echo": echo, "/close4000": close_4000, "/flood": flood}
