"""The application the master tests serve: endpoints that make a worker misbehave.

Every response body of ``/`` is the worker's pid, so a load generator can
tell which worker answered.
"""

import logging
import os
import time
from urllib.parse import parse_qs


def _text(start_response, body, status="200 OK"):
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _mark(path, text=""):
    if path:
        with open(path, "w") as handle:
            handle.write(text or str(os.getpid()))


def spin_the_cpu():
    """Blocks the gevent hub: no greenlet switch ever happens in here."""
    count = 0
    while True:
        count += 1


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = {key: values[-1] for key, values in parse_qs(environ["QUERY_STRING"]).items()}
    if path in ("/", "/pid"):
        return _text(start_response, str(os.getpid()).encode())
    if path == "/sleep":
        if "mark" in query:
            _mark(os.path.join(query["mark"], f"{os.getpid()}-{id(environ)}"))
        time.sleep(float(query.get("s", "0.5")))
        return _text(start_response, b"slept")
    if path == "/spin":
        _mark(query.get("mark"))
        spin_the_cpu()
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body():
            yield b"first chunk\n"
            time.sleep(float(query.get("delay", "5")))
            yield b"second chunk\n"

        return body()
    if path == "/log":
        logging.getLogger("greenserve.error").warning("app says %s", query.get("marker", "hello"))
        return _text(start_response, b"logged")
    return _text(start_response, b"not found", "404 Not Found")
