"""The application behind the load balancers: it says which instance and process answered.

``INSTANCE`` (an environment variable) names the instance, as a host name
would; ``/`` answers ``INSTANCE PID``, after ``?delay=SECONDS`` (so that
requests are in progress whenever a test stops or replaces a worker). ``/environ`` shows the addresses the
server gave the request, as a load balancer passed them on.
"""

import json
import os
import time
from urllib.parse import parse_qs

INSTANCE = os.environ.get("INSTANCE", "?")


def app(environ, start_response):
    if environ["PATH_INFO"] == "/environ":
        header = environ.get("greenserve.proxy_protocol")
        body = json.dumps(
            {
                "instance": INSTANCE,
                "remote": [environ["REMOTE_ADDR"], environ["REMOTE_PORT"]],
                "server": [environ["SERVER_NAME"], environ["SERVER_PORT"]],
                "scheme": environ["wsgi.url_scheme"],
                "proxy_protocol": header.version if header is not None else None,
            }
        ).encode()
        content_type = "application/json"
    else:
        delay = parse_qs(environ["QUERY_STRING"]).get("delay")
        if delay:
            time.sleep(float(delay[0]))  # patched by gevent: only this request waits
        body = f"{INSTANCE} {os.getpid()}".encode()
        content_type = "text/plain"
    start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]
