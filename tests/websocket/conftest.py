"""Fixtures for the WebSocket conformance suite: the real ``greenserve`` command serving
the same echo application twice, once as WSGI (``environ["wsgi.websocket"]``) and
once as ASGI, so every case runs against both.

Servers bind port 0 and run one worker (``--workers 1``: a pre-fork master and
the worker, as in production). They are started with ``tests/conftest.py``'s
factories, which stop them (and kill their process group if they do not stop)
at teardown. The applications record what they saw (a close, a send that
failed) in ``WS_MARKERS``, a temporary directory the tests read.
"""

from __future__ import annotations

import json
import re
import resource
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.conftest import GreenserveProcess

WS_APPS = Path(__file__).resolve().parent / "apps"
APPS = {"wsgi": "wsgi_echo:app", "asgi": "asgi_echo:app"}


class Markers:
    """The directory where the applications record what they saw."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def new(self) -> str:
        """A fresh marker name, for the ``?marker=`` of one connection."""
        return uuid.uuid4().hex

    def wait(self, name: str, timeout: float = 5.0) -> dict:
        """What the application recorded under ``name`` (waits until it has)."""
        path = self.path / name
        deadline = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > deadline:
                raise AssertionError(f"the application recorded nothing under {name} within {timeout} s")
            time.sleep(0.02)
        return json.loads(path.read_text())


@pytest.fixture(scope="module", params=sorted(APPS))
def app_kind(request: pytest.FixtureRequest) -> str:
    """ "asgi" or "wsgi": every test that uses a server runs against both applications."""
    return str(request.param)


@pytest.fixture(scope="module")
def markers(tmp_path_factory: pytest.TempPathFactory) -> Markers:
    return Markers(tmp_path_factory.mktemp("ws-markers"))


ServerFactory = Callable[..., GreenserveProcess]


def _starter(factory: Callable[..., GreenserveProcess], kind: str, markers: Markers) -> ServerFactory:
    def start(*args: str, **options: object) -> GreenserveProcess:
        server = factory(
            "--workers",
            "1",
            *args,
            APPS[kind],
            cwd=WS_APPS,
            env={"WS_MARKERS": str(markers.path)},
            **options,
        )
        server.kind = kind  # type: ignore[attr-defined]
        return server

    return start


@pytest.fixture(scope="module")
def module_start(module_greenserve, app_kind: str, markers: Markers) -> ServerFactory:
    """Start a server for the module's application (stopped at the end of the module)."""
    return _starter(module_greenserve, app_kind, markers)


@pytest.fixture
def start(greenserve, app_kind: str, markers: Markers) -> ServerFactory:
    """Start a server for this test alone (stopped after it): for tests that change its state."""
    return _starter(greenserve, app_kind, markers)


#: Descriptors the 1,000-connection case needs, in this process and in the server (which inherits it).
NOFILE = 4096


@pytest.fixture(scope="session")
def nofile() -> Iterator[None]:
    """Raise this process's descriptor limit (servers started afterwards inherit it); restore it after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture(scope="module")
def server(module_start: ServerFactory, nofile: None) -> GreenserveProcess:
    """The default server, with a one-second request timeout: a WebSocket is not a request
    that overruns, whatever it lasts, and room for the 1,000-connection case."""
    return module_start("--worker-connections", "1100", "--request-timeout", "1", "--graceful-timeout", "5")


@pytest.fixture(scope="module")
def limited(module_start: ServerFactory) -> GreenserveProcess:
    """Messages up to 64 KiB, pings every half second of silence, answered within half a second."""
    return module_start("--ws-max-size", "64K", "--ws-ping-interval", "0.5", "--ws-ping-timeout", "0.5")


@pytest.fixture(scope="module")
def no_deflate(module_start: ServerFactory) -> GreenserveProcess:
    return module_start("--no-ws-per-message-deflate")


# -- helpers --------------------------------------------------------------------------


def ws_url(server: GreenserveProcess, path: str = "/echo") -> str:
    return "ws://{}:{}{}".format(*server.address, path)


def ws_connect(server: GreenserveProcess, path: str = "/echo", **options: object) -> ClientConnection:
    """A ``websockets`` client: no proxy, no keepalive pings, no size limit unless asked."""
    settings: dict = {
        "open_timeout": 5,
        "close_timeout": 3,
        "proxy": None,
        "ping_interval": None,
        "max_size": None,
        **options,
    }
    return connect(ws_url(server, path), **settings)


def worker_pid(server: GreenserveProcess) -> int:
    """The pid of the server's (only) worker, from its ``Worker N serving`` line."""
    for line in server.lines:
        match = re.search(r"Worker (\d+) serving", line)
        if match:
            return int(match.group(1))
    raise AssertionError(f"no worker in:\n{server.log}")


def rss_kb(pid: int) -> int:
    """A process's resident memory (VmRSS, kB), from /proc."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.fixture
def survivor(server: GreenserveProcess) -> Iterator[GreenserveProcess]:
    """The default server, checked after the test: its worker is the same and still echoes."""
    pid = worker_pid(server)
    yield server
    with ws_connect(server) as conn:
        conn.send("still serving")
        assert conn.recv(timeout=5) == "still serving"
    booted = [line for line in server.lines if "Booting worker" in line]
    assert len(booted) == 1 and str(pid) in booted[0], "the worker was restarted"
