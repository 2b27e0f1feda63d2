"""Where the conformance apps record what they saw (JSON files the tests wait for)."""

from __future__ import annotations

import json
import os
from urllib.parse import parse_qs


def record(name: str, data: dict) -> None:
    """Write ``data`` as JSON to ``$WS_MARKERS/name`` atomically (nothing without a name)."""
    base = os.environ.get("WS_MARKERS", "")
    if not name or not base or "/" in name:
        return
    path = os.path.join(base, name)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as handle:
        json.dump(data, handle)
    os.replace(tmp, path)


def query(raw: str) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(raw).items()}
