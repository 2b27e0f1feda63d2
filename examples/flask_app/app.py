"""A small, ordinary (synchronous) Flask application served by greenserve.

Nothing in it knows about gevent: greenserve patches the standard library
before it imports this module, so ``time.sleep`` and the sockets that
``requests`` opens yield to other requests instead of blocking the process.
One greenserve process therefore serves hundreds of these slow requests at
the same time.

Run it from the repository root::

    greenserve --chdir examples/flask_app app:app

Endpoints:

- ``GET /``                      hello
- ``GET /sleep?seconds=0.5``     blocks in ``time.sleep`` (at most 30 s)
- ``GET /upstream-sleep``        a slow "upstream service": sleeps 1 s
- ``GET /slow``                  calls ``/upstream-sleep`` over HTTP with ``requests``
- ``POST /json``                 echoes the JSON body it receives
"""

from __future__ import annotations

import os
import time

import requests
from flask import Flask, abort, jsonify, request

app = Flask(__name__)

#: Where /slow sends its upstream call. By default the same server, reached at
#: the host the client used (``http://127.0.0.1:8000/upstream-sleep``).
UPSTREAM_URL = os.environ.get("UPSTREAM_URL", "")
UPSTREAM_TIMEOUT = 10.0
MAX_SLEEP = 30.0


@app.get("/")
def hello():
    return "Hello from Flask on greenserve!\n"


@app.get("/sleep")
def sleep():
    try:
        seconds = float(request.args.get("seconds", "0.5"))
    except ValueError:
        abort(400, "seconds must be a number")
    if not 0 <= seconds <= MAX_SLEEP:
        abort(400, f"seconds must be between 0 and {MAX_SLEEP:g}")
    started = time.perf_counter()
    time.sleep(seconds)  # patched by gevent: only this request waits
    return jsonify(slept=seconds, elapsed=round(time.perf_counter() - started, 3))


@app.get("/upstream-sleep")
def upstream_sleep():
    """Stands in for a slow service this application depends on."""
    time.sleep(1)
    return jsonify(upstream="done", slept=1)


@app.get("/slow")
def slow():
    """Blocks on network I/O: an HTTP call to a slow upstream, with plain ``requests``.

    While this greenlet waits for the upstream's answer, the same process
    accepts and serves the upstream request itself (and every other request).
    """
    url = UPSTREAM_URL or f"{request.scheme}://{request.host}/upstream-sleep"
    started = time.perf_counter()
    try:
        upstream = requests.get(url, timeout=UPSTREAM_TIMEOUT)
        upstream.raise_for_status()
    except requests.RequestException as exc:
        return jsonify(error=f"upstream call failed: {exc}", upstream_url=url), 502
    return jsonify(
        upstream_url=url,
        upstream=upstream.json(),
        elapsed=round(time.perf_counter() - started, 3),
    )


@app.post("/json")
def echo_json():
    data = request.get_json(silent=True)
    if data is None:
        return jsonify(error="send a JSON body with Content-Type: application/json"), 400
    return jsonify(received=data)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit("Serve this app with greenserve: greenserve --chdir examples/flask_app app:app")
