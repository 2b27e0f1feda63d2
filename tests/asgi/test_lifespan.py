"""ASGI lifespan: startup before serving, shutdown on a graceful stop, failures stop
the server with the app-load exit code, ``auto`` and ``off``."""

from __future__ import annotations

import json
import re
import signal
import socket
import time

import pytest
import requests

from tests.asgi.conftest import stop, wait_for_file, worker_pids
from tests.conftest import request_bytes

EXIT_APP_LOAD_ERROR = 4


def test_startup_completes_before_the_worker_accepts(serve):
    """A 1 s startup: a request sent as soon as the socket is bound is answered after it."""
    server = serve("--single-process", "raw_app:app", ready=r"Listening at", env={"ASGI_STARTUP_DELAY": "1"})
    sent_at = time.time()
    response = requests.get(server.url + "/pid", timeout=10)
    assert response.status_code == 200
    state = response.json()["state"]
    assert state["started"] is True
    assert state["pid"] == server.proc.pid
    startup = wait_for_file(server.markers / f"raw-startup-{server.proc.pid}.json", timeout=1)
    assert startup["done"] - startup["began"] >= 0.9
    assert time.time() - sent_at >= 0.5, "the request was answered before startup finished"
    server.wait_for(f"Worker {server.proc.pid} serving")  # logged before serving; maybe not read yet
    log = server.log
    assert log.index("ASGI lifespan startup complete") < log.index(f"Worker {server.proc.pid} serving")


def test_startup_and_shutdown_in_each_worker(serve):
    server = serve("-w", "2", "lifespan_apps:recording", ready=None)
    server.wait_for("Ready: 2 worker", timeout=30)
    pids = worker_pids(server)
    assert len(pids) == 2
    for pid in pids:
        assert wait_for_file(server.markers / f"startup-{pid}.json", timeout=1)["pid"] == pid
    assert requests.get(server.url + "/", timeout=5).text == "[('token', 'from-startup')]"
    assert not list(server.markers.glob("shutdown-*"))
    assert stop(server) == 0
    for pid in pids:
        shutdown = wait_for_file(server.markers / f"shutdown-{pid}.json", timeout=1)
        assert shutdown["pid"] == pid
    assert server.log.count("ASGI lifespan shutdown complete") == 2


def test_shutdown_waits_for_in_flight_requests(serve):
    """Graceful stop: the running request finishes first, then shutdown runs."""
    server = serve("--single-process", "raw_app:app", graceful=5)
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(request_bytes("GET", "/sleep?s=1&entered=sleeping.json"))
        wait_for_file(server.markers / "sleeping.json", timeout=5)  # the request is in the app
        server.send_signal(signal.SIGTERM)
        sock.settimeout(5)
        data = sock.recv(65536)
        answered_at = time.time()
    assert data.startswith(b"HTTP/1.1 200"), data
    assert server.wait(10) == 0
    shutdown = wait_for_file(server.markers / f"raw-shutdown-{server.proc.pid}.json", timeout=1)
    assert shutdown["at"] >= answered_at - 0.5


@pytest.mark.parametrize(
    ("app", "mode", "message"),
    [
        ("lifespan_apps:startup_raises", "on", "database unreachable during startup"),
        ("lifespan_apps:startup_failed_message", "on", "config check failed: missing SECRET"),
        ("lifespan_apps:startup_failed_message", "auto", "config check failed: missing SECRET"),
        ("lifespan_apps:no_lifespan", "on", "unsupported scope type"),
    ],
    ids=["raises-on", "failed-message-on", "failed-message-auto", "unsupported-on"],
)
@pytest.mark.parametrize("mode_flag", [["-w", "2"], ["--single-process"]], ids=["master", "single"])
def test_failed_startup_stops_the_server(serve, app, mode, message, mode_flag):
    started = time.monotonic()
    server = serve(*mode_flag, "--lifespan", mode, app, ready=None)
    code = server.wait(timeout=15)
    elapsed = time.monotonic() - started
    assert code == EXIT_APP_LOAD_ERROR, server.log
    assert elapsed < 10
    line = server.wait_for(r"ASGI lifespan startup", timeout=2)
    assert "ERROR" in line
    assert message in server.log
    # No respawn loop: each worker tried once.
    assert len(re.findall(r"Booting worker", server.log)) <= 2


def test_auto_serves_an_app_without_lifespan(serve):
    server = serve("--single-process", "--lifespan", "auto", "lifespan_apps:no_lifespan")
    response = requests.get(server.url + "/", timeout=5)
    assert response.status_code == 200
    assert response.text.startswith("no lifespan here")
    assert "lifespan not supported" in server.log
    assert stop(server) == 0


def test_off_never_calls_startup(serve):
    server = serve("--single-process", "--lifespan", "off", "lifespan_apps:recording")
    assert requests.get(server.url + "/", timeout=5).text == "[]"
    assert stop(server) == 0
    assert not list(server.markers.iterdir())
    assert "lifespan startup complete" not in server.log


def test_framework_lifespan_with_lifespan_on(serve):
    """A framework's lifespan (Starlette's) runs with ``--lifespan on``."""
    server = serve("--single-process", "--lifespan", "on", "starlette_app:app")
    data = requests.get(server.url + "/state", timeout=5).json()
    assert data["greeting"] == "hello from lifespan"
    assert json.loads((server.markers / "starlette-startup.json").read_text())["pid"] == server.proc.pid
