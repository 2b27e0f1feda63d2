"""The single-process (Windows) path, exercised on Linux through a simulation.

``tests/windows_sim/sitecustomize.py`` makes greenserve's modules see a
platform without fork, POSIX-only modules or POSIX-only signals (gevent keeps
the real one). The real ``greenserve`` command must then fall back to one
process with a one-line notice, serve, and stop cleanly on Ctrl-C (SIGINT)
and SIGTERM.
"""

import os
import signal
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import GreenserveProcess

SHIM = Path(__file__).resolve().parent / "windows_sim"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="simulates Windows on POSIX")


def _start(*args: str) -> GreenserveProcess:
    env = {"PYTHONPATH": os.pathsep.join([str(SHIM), os.environ.get("PYTHONPATH", "")])}
    server = GreenserveProcess(["-b", "127.0.0.1:0", "--no-access-log", *args], env=env)
    return server.start(ready=r"Worker \d+ serving")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_serves_in_one_process_and_stops_cleanly(signum):
    server = _start("--workers", "3", "basic:app")
    try:
        assert "no fork() on this platform: serving from a single process" in server.log
        assert "master" not in server.log  # no pre-fork master
        response = requests.get(server.url + "/", timeout=5)
        assert response.status_code == 200
        assert response.text == "Hello, world!"
        assert server.proc.pid == int(server.wait_for(r"Worker \d+ serving").split("Worker ")[1].split()[0])
        code = server.stop(signum, timeout=15)
        assert code == 0, server.log
        assert "Traceback" not in server.log
        assert "simulated Windows" not in server.log
    finally:
        server.stop(signal.SIGKILL)


def test_shim_refuses_posix_only_imports_from_greenserve():
    env = {**os.environ, "PYTHONPATH": str(SHIM)}
    code = (
        "import greenserve.compat as c, gevent, fcntl\n"
        "assert not c.CAN_FORK and not c.POSIX\n"
        "ns = {'__name__': 'greenserve.fake'}\n"
        "try:\n"
        "    exec('import fcntl', ns)\n"
        "except ImportError as exc:\n"
        "    print('refused', exc)\n"
    )
    import subprocess

    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "refused simulated Windows" in result.stdout
