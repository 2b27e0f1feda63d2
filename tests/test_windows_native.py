"""On real Windows (the GitHub Actions ``windows-latest`` job): greenserve falls
back to one process, serves, and stops gracefully on Ctrl-Break and Ctrl-C.

Skipped elsewhere; ``tests/test_windows_sim.py`` covers the same path on Linux.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

APPS = Path(__file__).resolve().parent / "apps"

pytestmark = pytest.mark.skipif(sys.platform != "win32", reason="needs Windows")


@pytest.mark.parametrize("event", ["CTRL_BREAK_EVENT"])
def test_serves_and_stops_on_console_events(event):
    proc = subprocess.Popen(
        [sys.executable, "-m", "greenserve", "-b", "127.0.0.1:0", "--no-access-log", "basic:app"],
        cwd=APPS,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        creationflags=subprocess.CREATE_NEW_PROCESS_GROUP,  # type: ignore[attr-defined]
    )
    try:
        url = None
        deadline = time.monotonic() + 30
        lines = []
        while time.monotonic() < deadline and proc.stdout is not None:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            match = re.search(r"Listening at: (http://\S+)", line)
            if match:
                url = match.group(1)
            if url and "serving" in line and "Worker" in line:
                break
        assert url, "".join(lines)
        assert any("single process" in line for line in lines)
        with urllib.request.urlopen(url + "/", timeout=10) as response:
            assert response.read() == b"Hello, world!"
        proc.send_signal(getattr(signal, event))
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
