"""metrics_app, slow to boot: its import waits until the file named by ``$GATE`` exists."""

import os
import time

from metrics_app import app  # noqa: F401 - served as gated_app:app

_deadline = time.monotonic() + 30
while not os.path.exists(os.environ["GATE"]) and time.monotonic() < _deadline:
    time.sleep(0.02)
