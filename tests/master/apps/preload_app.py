"""An application meant for --preload: imports ssl, requests and threading at import time.

Records the pid of the process that imported it, so a test can check it was
the master.
"""

import json
import os
import socket
import ssl
import threading
import time

import requests

with open(os.environ["IMPORT_LOG"], "a") as _log:
    _log.write(f"{os.getpid()}\n")

_CONTEXT = ssl.create_default_context()
_LOCK = threading.Lock()


def _fanout(base, count, seconds):
    statuses = []

    def call():
        response = requests.get(f"{base}/sleep?s={seconds}", timeout=10)
        with _LOCK:
            statuses.append(response.status_code)

    started = time.monotonic()
    threads = [threading.Thread(target=call) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    return {"elapsed": time.monotonic() - started, "statuses": statuses}


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/sleep":
        time.sleep(float(environ["QUERY_STRING"].partition("=")[2] or 0.5))
        data = {"slept": True}
    elif path == "/fanout":
        base = f"http://{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
        data = _fanout(base, 10, 0.5)
    elif path == "/introspect":
        data = {
            "socket": f"{socket.socket.__module__}.{socket.socket.__qualname__}",
            "thread_lock": type(_LOCK).__module__,
            "ssl_socket": ssl.SSLSocket.__module__,
            "pid": os.getpid(),
        }
    else:
        data = {"pid": os.getpid()}
    body = json.dumps(data).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
