"""A WSGI application for the logging tests: it fails, logs and sets response headers on request."""

import logging
from urllib.parse import parse_qs


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = {key: values[-1] for key, values in parse_qs(environ["QUERY_STRING"]).items()}
    if path == "/raise":
        raise RuntimeError('boom "quoted"\nsecond line of the message')
    if path == "/log":
        # A message as long and as hostile as an application may log.
        size = int(query.get("size", "100"))
        text = ('x"\\\n\r\x1b\x00\u00e9\u2028\udcff' * (size // 10 + 1))[:size]
        logging.getLogger("greenserve.error").warning("app says: %s", text)
    if path == "/request-id":
        environ["greenserve.request_id"] = query.get("id", "req-1")
    body = b"ok"
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", "2"), ("X-App", 'a"b\\c')],
    )
    return [body]
