"""The application the statsd tests serve: a status code on demand, a crash, a warning."""

import logging
import os


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/boom":
        raise RuntimeError("the application failed")
    if path == "/warn":
        logging.getLogger("greenserve.error").warning("the application warns")
    status = environ["QUERY_STRING"].removeprefix("code=") if path == "/status" else "200"
    body = str(os.getpid()).encode()
    start_response(f"{status} Status", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
