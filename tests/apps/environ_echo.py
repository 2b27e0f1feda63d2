"""Answers every request with its environ as JSON (the JSON-representable values)."""

import json


def app(environ, start_response):
    data = {k: v for k, v in environ.items() if isinstance(v, (str, bool, int, tuple))}
    body = json.dumps(data, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
