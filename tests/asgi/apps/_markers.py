"""Where the test apps record what they saw (files the tests poll)."""

from __future__ import annotations

import json
import os
import time


def marker_dir() -> str:
    return os.environ.get("ASGI_MARKERS", "")


def record(path: str, data: object) -> None:
    """Write ``data`` as JSON to ``path`` atomically (``path`` may be relative to ASGI_MARKERS)."""
    if not path:
        return
    if not os.path.isabs(path):
        base = marker_dir()
        if not base:
            return
        path = os.path.join(base, path)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as handle:
        json.dump(data, handle)
    os.replace(tmp, path)


def now() -> float:
    return time.time()
