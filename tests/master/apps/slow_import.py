"""An application that takes a while to import (a big framework, say)."""

import os
import time

time.sleep(float(os.environ.get("IMPORT_DELAY", "1.5")))


def app(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
