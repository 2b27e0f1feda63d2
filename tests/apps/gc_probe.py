"""Reports the garbage collector's settings as the worker left them (tests/functional/test_gc.py).

``GC_PROBE_THRESHOLD=N`` makes the application set its own first-generation
threshold at import, as some applications do.
"""

import gc
import json
import os

if os.environ.get("GC_PROBE_THRESHOLD"):
    gc.set_threshold(int(os.environ["GC_PROBE_THRESHOLD"]))


def app(environ, start_response):
    body = json.dumps({"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
