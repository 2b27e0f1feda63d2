"""WSGI applications for the benchmark (``bench.apps:hello``, ``bench.apps:sleep50``).

Kept deliberately tiny so the server, not the app, is what gets measured.
``time.sleep`` is looked up at call time, so a server that monkey-patches
(gevent) gets the cooperative sleep however early this module was imported.
"""

import time

BODY = b"Hello, world!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]
STATUS = "200 OK"


def hello(environ, start_response):
    """13-byte body, Content-Length set: the classic hello-world request."""
    start_response(STATUS, HEADERS)
    return [BODY]


def sleep50(environ, start_response):
    """An app that waits 50 ms on I/O (``time.sleep``) before answering."""
    time.sleep(0.05)
    start_response(STATUS, HEADERS)
    return [BODY]
