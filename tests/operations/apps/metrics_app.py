"""The application the metrics and blocker-report tests serve.

- ``/`` and ``/pid``: the worker's pid (so a client can tell which worker answered);
- ``/echo``: the request body back;
- ``/status?code=N``: an empty answer with status N;
- ``/error``: raises (a 500 from the server);
- ``/ws``: a WebSocket (``wsgi.websocket``) that echoes until the client closes;
- ``/block?ms=N``: blocks the whole event loop N ms in C (``usleep`` through ctypes:
  gevent cannot patch it), in :func:`hold_the_hub_in_c`, which the blocker report must name;
- ``/sleep?s=N``: a cooperative sleep (yields to the hub: no block).
"""

import ctypes
import os
import time
from urllib.parse import parse_qs

_LIBC = ctypes.CDLL(None)


def _answer(start_response, body, status="200 OK"):
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def hold_the_hub_in_c(milliseconds):
    """A C call that does not yield: every other connection of the worker waits."""
    _LIBC.usleep(int(milliseconds * 1000))


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = {key: values[-1] for key, values in parse_qs(environ["QUERY_STRING"]).items()}
    if path in ("/", "/pid"):
        return _answer(start_response, str(os.getpid()).encode())
    if path == "/echo":
        return _answer(start_response, environ["wsgi.input"].read())
    if path == "/status":
        code = int(query.get("code", "200"))
        start_response(f"{code} Status {code}", [("Content-Length", "0")])
        return []
    if path == "/error":
        raise RuntimeError("the application failed on purpose")
    if path == "/ws":
        ws = environ["wsgi.websocket"]
        while True:
            message = ws.receive()
            if message is None:
                return []
            ws.send(message)
    if path == "/block":
        hold_the_hub_in_c(float(query.get("ms", "300")))
        return _answer(start_response, b"blocked")
    if path == "/sleep":
        time.sleep(float(query.get("s", "0.05")))
        return _answer(start_response, b"slept")
    return _answer(start_response, b"not found", "404 Not Found")
