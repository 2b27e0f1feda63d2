"""Fixtures for the ASGI bridge tests: the real ``greenserve`` command serving the
applications in ``tests/asgi/apps`` (``--chdir``), bound to port 0.

Every server gets ``ASGI_MARKERS``, a temporary directory where the test
applications record what they saw (lifespan, disconnects, background tasks),
and a short ``--graceful-timeout`` so a test that leaves a stuck request
behind cannot stall the teardown. Every server is stopped (and its process
group killed if it does not stop) at teardown.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import GreenserveProcess

ASGI_APPS = Path(__file__).resolve().parent / "apps"


class ServerFactory:
    """Starts ``greenserve`` servers for the ASGI apps and stops all of them at teardown."""

    def __init__(self, markers: Path) -> None:
        self.markers = markers
        self.started: list[GreenserveProcess] = []

    def __call__(
        self,
        *args: str,
        ready: str | None = "serving",
        env: dict | None = None,
        timeout: float = 20.0,
        quiet: bool = True,
        graceful: float = 2.0,
    ) -> GreenserveProcess:
        argv = ["-b", "127.0.0.1:0", "--chdir", str(ASGI_APPS), "--graceful-timeout", str(graceful)]
        if quiet:
            argv.append("--no-access-log")
        argv += list(args)
        server = GreenserveProcess(
            argv, cwd=ASGI_APPS, env={"ASGI_MARKERS": str(self.markers), **(env or {})}
        )
        server.markers = self.markers  # type: ignore[attr-defined]
        self.started.append(server)
        return server.start(ready=ready, timeout=timeout)

    def stop_all(self) -> None:
        for server in self.started:
            stop(server)


def stop(server: GreenserveProcess, timeout: float = 8.0) -> int | None:
    """SIGTERM and wait ``timeout`` s; then SIGKILL the whole process group.

    Then waits for the rest of the server's output (see ``GreenserveProcess.wait_output``).
    """
    proc = server.proc
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        except ProcessLookupError:
            pass
    else:
        try:  # a master that exited may leave workers behind in its group
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    server.wait_output()  # its last log lines, before a test reads them
    return proc.returncode


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServerFactory]:
    """Factory: ``serve("--single-process", "raw_app:app")``, stopped after the test."""
    markers = tmp_path / "markers"
    markers.mkdir()
    factory = ServerFactory(markers)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def module_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Like :func:`serve`, for servers shared by the tests of a module."""
    factory = ServerFactory(tmp_path_factory.mktemp("markers"))
    yield factory
    factory.stop_all()


# -- helpers -------------------------------------------------------------------------


def worker_pids(server: GreenserveProcess) -> list[int]:
    """Pids of the workers that logged ``Worker N serving``."""
    return [int(m.group(1)) for line in server.lines if (m := re.search(r"Worker (\d+) serving", line))]


def rss_kb(pid: int) -> int:
    """Resident set size of a process, from /proc."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def thread_count(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError(f"no Threads for {pid}")


def wait_for_file(path: Path, timeout: float = 5.0) -> dict:
    """The JSON a test app recorded at ``path`` (waits for it, bounded)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} was not written within {timeout} s")
        time.sleep(0.02)
    return json.loads(path.read_text())


def http_url(server: GreenserveProcess, path: str = "/") -> str:
    return server.url + path


def ws_url(server: GreenserveProcess, path: str = "/") -> str:
    return "ws://{}:{}{}".format(*server.address, path)
