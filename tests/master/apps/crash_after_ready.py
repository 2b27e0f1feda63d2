"""A worker that starts serving, then dies a moment later (os._exit(7))."""

import os
import time

import gevent

with open(os.environ["SPAWN_LOG"], "a") as _log:
    _log.write(f"{os.getpid()} {time.time()}\n")

gevent.spawn_later(float(os.environ.get("CRASH_AFTER", "0.3")), os._exit, 7)


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
