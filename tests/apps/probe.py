"""A WSGI application for the functional tests: endpoints that observe the server.

Query parameters steer each endpoint (``/stream?chunks=3&size=10``). The app
records every request it is called for, so ``/calls`` tells a test whether a
request reached the application at all; marker files (written atomically) and
``/log`` lines let a test wait for what happened instead of sleeping.
"""

import hashlib
import json
import logging
import os
import time
from urllib.parse import parse_qs

#: RAW_URI of every request the application was called for (not /calls itself).
CALLS = []


def _json(start_response, data, status="200 OK", headers=()):
    body = json.dumps(data, sort_keys=True).encode()
    start_response(
        status,
        [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers],
    )
    return [body]


def _text(start_response, body, status="200 OK", headers=()):
    start_response(status, [("Content-Type", "text/plain"), *headers])
    return [body]


def _touch(path, text="closed"):
    """Write a marker file atomically: a test that sees the file also sees its text."""
    if path:
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)


class Stream:
    """A response iterable that records its close() in a marker file."""

    def __init__(self, chunks, size, delay, marker):
        self.chunks = chunks
        self.size = size
        self.delay = delay
        self.marker = marker
        self.sent = 0

    def __iter__(self):
        for i in range(self.chunks):
            if self.delay and i:
                time.sleep(self.delay)
            self.sent += 1
            yield (b"%d:" % i).ljust(self.size, b".")[: self.size] if self.size else b"chunk%d\n" % i

    def close(self):
        _touch(self.marker, f"closed after {self.sent}")


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = {key: values[-1] for key, values in parse_qs(environ["QUERY_STRING"]).items()}
    if path == "/calls":
        return _json(start_response, CALLS)
    CALLS.append(environ["RAW_URI"])
    body_input = environ["wsgi.input"]

    if path == "/environ":
        data = {k: v for k, v in environ.items() if isinstance(v, (str, bool, int, tuple))}
        return _json(start_response, data)
    if path == "/echo":
        body = body_input.read()
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [body]
    if path == "/read":
        mode = query.get("mode", "all")
        pieces = []
        if mode == "all":
            pieces.append(body_input.read())
        elif mode == "n":
            size = int(query.get("n", "3"))
            while piece := body_input.read(size):
                pieces.append(piece)
        elif mode == "readline":
            while line := body_input.readline():
                pieces.append(line)
        elif mode == "readline-n":
            size = int(query.get("n", "4"))
            while line := body_input.readline(size):
                pieces.append(line)
        elif mode == "readlines":
            pieces = body_input.readlines()
        elif mode == "iter":
            pieces = list(body_input)
        return _json(start_response, [piece.decode("latin-1") for piece in pieces])
    if path == "/digest":
        digest = hashlib.sha256()
        length = 0
        while piece := body_input.read(65536):
            digest.update(piece)
            length += len(piece)
        return _json(start_response, {"length": length, "sha256": digest.hexdigest()})
    if path == "/read-some":
        data = body_input.read(int(query.get("n", "1")))
        return _text(start_response, b"read " + data)
    if path == "/no-read":
        return _text(start_response, b"did not read")
    if path == "/sleep":
        _touch(query.get("entered"), "sleeping")  # a test waits for the request to be here
        time.sleep(float(query.get("s", "0.5")))
        _touch(query.get("marker"), "done")
        return _text(start_response, b"slept")
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Stream(
            int(query.get("chunks", "3")),
            int(query.get("size", "0")),
            float(query.get("delay", "0")),
            query.get("marker"),
        )
    if path == "/list":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"a", b"bc", b"def"]
    if path == "/blob":
        size = int(query.get("size", "1000"))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [b"x" * size]
    if path == "/file":
        handle = open(query["path"], "rb")  # noqa: SIM115 - closed by the server
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](handle)
    if path == "/status":
        code = query.get("code", "200")
        start_response(f"{code} Whatever", [("Content-Type", "text/plain")])

        def body():
            yield b"ignored body"

        return body()
    if path == "/close":
        return _text(start_response, b"bye", headers=[("Connection", "close")])
    if path == "/pid":
        return _text(start_response, str(os.getpid()).encode())
    if path == "/log":
        # A line in the error log, after everything the worker logged before
        # (the access log line of the previous request on the connection, say).
        logging.getLogger("greenserve.error").warning("app says %s", query.get("marker", "hello"))
        return _text(start_response, b"logged")
    return _text(start_response, b"not found", status="404 Not Found")
