"""A WSGI application with one endpoint per behaviour the tests check."""

import json
import os
import time


def _json(start_response, data, status="200 OK"):
    body = json.dumps(data, sort_keys=True).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"Hello, world!"]
    if path == "/environ":
        data = {k: v for k, v in environ.items() if isinstance(v, (str, bool, int, tuple))}
        return _json(start_response, data)
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [body]
    if path == "/echo-lines":
        lines = list(environ["wsgi.input"])
        return _json(start_response, [line.decode("latin-1") for line in lines])
    if path == "/sleep":
        seconds = float(environ.get("QUERY_STRING") or 0.5)
        time.sleep(seconds)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slept"]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])

        def chunks():
            for i in range(3):
                yield b"chunk%d\n" % i

        return chunks()
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"and returned"]
    if path == "/error":
        raise RuntimeError("boom")
    if path == "/inject":
        start_response("200 OK", [("X-Bad", "a\r\nSet-Cookie: evil=1")])
        return [b"x"]
    if path == "/no-content":
        start_response("204 No Content", [])
        return [b"ignored body"]
    if path == "/not-modified":
        start_response("304 Not Modified", [("ETag", '"x"')])
        return [b"ignored body"]
    if path == "/file":
        handle = open(os.path.abspath(__file__), "rb")  # noqa: SIM115 - closed by the server
        start_response("200 OK", [("Content-Type", "text/x-python")])
        return environ["wsgi.file_wrapper"](handle)
    if path == "/close":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Connection", "close")])
        return [b"bye"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


def application(environ, start_response):
    """The default attribute name (``module`` alone as the app spec)."""
    return app(environ, start_response)


def create_app(greeting="Hello", punctuation="!"):
    """A factory, for ``basic:create_app('Hi', punctuation='?')``."""

    def factory_app(environ, start_response):
        body = f"{greeting}{punctuation}".encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    return factory_app
