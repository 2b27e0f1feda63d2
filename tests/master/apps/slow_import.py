"""An application that takes a while to import (a big framework, say)."""

import os
import time

if os.environ.get("IMPORT_MARK"):  # tells a test the import has begun, in this pid
    with open(os.environ["IMPORT_MARK"], "w") as _mark:
        _mark.write(str(os.getpid()))
time.sleep(float(os.environ.get("IMPORT_DELAY", "1.5")))


def app(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
