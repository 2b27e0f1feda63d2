"""WSGI code written for gevent-websocket, unchanged: ``ws = environ["wsgi.websocket"]``.

- ``/echo``: the classic loop (``while not ws.closed: ws.receive() ...``);
  ``binary:TEXT`` is answered with ``ws.send(TEXT, binary=True)``,
  ``close:CODE`` with ``ws.close(CODE, b"bye")`` followed by a send, which
  must fail;
- ``/deny``: answers 403 without touching the WebSocket (the upgrade is declined);
- ``/fail``: accepts, sends ``failing``, then raises;
- ``/app``: a ``geventwebsocket.resource.Resource`` with a
  ``WebSocketApplication`` (gevent-websocket's own framework), when it is installed;
- ``/events`` (plain HTTP): what the handlers saw, as JSON.
"""

import json
import os

#: What the WebSocket handlers observed, in order (one worker: -w 1).
EVENTS = []


def _json(start_response, data):
    body = json.dumps(data).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _error(exc):
    return {"type": type(exc).__name__, "module": type(exc).__module__, "oserror": isinstance(exc, OSError)}


def echo(ws):
    EVENTS.append({"event": "open", "path": ws.path, "version": ws.version, "origin": ws.origin})
    while not ws.closed:
        message = ws.receive()
        if message is None:
            EVENTS.append({"event": "receive returned None"})
            try:
                ws.receive()
            except Exception as exc:
                EVENTS.append({"event": "receive after close", "error": _error(exc)})
            break
        if isinstance(message, str) and message.startswith("binary:"):
            ws.send(message[len("binary:") :], binary=True)
        elif isinstance(message, str) and message.startswith("close:"):
            ws.close(int(message[len("close:") :]), b"bye")
            try:
                ws.send("after close")
            except Exception as exc:
                EVENTS.append({"event": "send after close", "closed": ws.closed, "error": _error(exc)})
        else:
            ws.send(message)


def _resource():
    """gevent-websocket's framework: a Resource routing to a WebSocketApplication."""
    try:
        from geventwebsocket.resource import Resource, WebSocketApplication
    except ImportError:
        return None

    class Echo(WebSocketApplication):
        def on_open(self):
            EVENTS.append({"event": "app open"})

        def on_message(self, message, **kwargs):
            if message is not None:  # None: the client closed; the next receive() ends handle()
                self.ws.send(message, **kwargs)

        def on_close(self, reason=None):
            EVENTS.append({"event": "app close"})

    return Resource([("^/app", Echo)])


RESOURCE = _resource()


def app(environ, start_response):
    ws = environ.get("wsgi.websocket")
    path = environ.get("PATH_INFO", "")
    if ws is None:
        if path == "/events":
            return _json(start_response, {"pid": os.getpid(), "events": EVENTS})
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return [b"plain HTTP"]
    if path == "/deny":
        start_response("403 Forbidden", [("Content-Type", "text/plain"), ("Content-Length", "9")])
        return [b"forbidden"]
    if path == "/fail":
        ws.send("failing")
        raise RuntimeError("the handler failed")
    if path == "/app" and RESOURCE is not None:
        return RESOURCE(environ, start_response)
    echo(ws)
    return []
