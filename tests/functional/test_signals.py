"""Stopping: SIGTERM (and SIGINT/Ctrl-C in single-process mode) drain in-flight requests,
refuse new ones, close idle connections.

Each test runs with the pre-fork master (the default) and with ``--single-process``.
For the master, SIGINT is a quick stop like SIGQUIT (tests/master covers it).
"""

from __future__ import annotations

import http.client
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ResponseReader, read_until_close, request_bytes, wait_until

MODES = {"master": [], "single": ["--single-process"]}


@pytest.fixture(params=list(MODES))
def mode(request) -> list[str]:
    return MODES[request.param]


def _slow_request(server, seconds: float, result: dict, entered: Path) -> threading.Thread:
    """A request sleeping ``seconds`` in the application, from a thread; returns once it is there."""

    def run() -> None:
        host, port = server.address
        conn = http.client.HTTPConnection(host, port, timeout=15)
        try:
            conn.request("GET", f"/sleep?s={seconds}&entered={entered}")
            response = conn.getresponse()
            result["status"] = response.status
            result["body"] = response.read()
        except (OSError, http.client.HTTPException) as exc:
            result["error"] = exc
        finally:
            result["done"] = time.monotonic()
            conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert wait_until(entered.exists, 10), f"the slow request did not reach the application:\n{server.log}"
    return thread


def _idle_connection(server) -> socket.socket:
    sock = server.connect()
    sock.sendall(request_bytes("GET", "/list"))
    assert ResponseReader(sock).read().body == b"abcdef"
    return sock


def _not_served(server) -> bool:
    """A new client gets no response: refused, reset or closed."""
    try:
        sock = socket.create_connection(server.address, timeout=2)
    except OSError:
        return True
    with sock:
        try:
            sock.sendall(request_bytes("GET", "/list"))
        except OSError:
            return True
        data, _ = read_until_close(sock, 5)
    return not data.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize(
    ("mode_name", "signum"),
    [("master", signal.SIGTERM), ("single", signal.SIGTERM), ("single", signal.SIGINT)],
    ids=["master-SIGTERM", "single-SIGTERM", "single-SIGINT"],
)
def test_graceful_stop(greenserve, tmp_path, mode_name, signum):
    """The master's SIGINT is a quick stop, like its SIGQUIT: tests/master covers it."""
    mode = MODES[mode_name]
    server = greenserve(*mode, "--graceful-timeout", "10", "--keep-alive", "30", "probe:app")
    idle = _idle_connection(server)
    result: dict = {}
    thread = _slow_request(server, 1.5, result, tmp_path / "entered")
    start = len(server.lines)
    server.send_signal(signum)
    signalled = time.monotonic()
    try:
        # The idle keep-alive connection is closed at once.
        idle.settimeout(1.5)
        try:
            assert idle.recv(1) == b""
        except ConnectionResetError:
            pass
        assert time.monotonic() - signalled < 1.5
        # New clients are not served.
        assert _not_served(server)
    finally:
        idle.close()
    # The in-flight request completes.
    thread.join(15)
    assert result.get("status") == 200, result
    assert result["body"] == b"slept"
    assert server.wait(15) == 0
    assert result["done"] - signalled > 0.5
    assert "Traceback" not in "\n".join(server.lines[start:]), server.log


def test_graceful_stop_with_nothing_in_flight_is_quick(greenserve, mode):
    server = greenserve(*mode, "probe:app")
    idle = _idle_connection(server)
    try:
        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        assert server.wait(10) == 0
        assert time.monotonic() - started < 2
    finally:
        idle.close()
    assert "Traceback" not in server.log


def test_graceful_timeout_cuts_long_requests(greenserve, tmp_path, mode):
    server = greenserve(*mode, "--graceful-timeout", "1", "probe:app")
    result: dict = {}
    thread = _slow_request(server, 5, result, tmp_path / "entered")
    start = len(server.lines)
    signalled = time.monotonic()
    server.send_signal(signal.SIGTERM)
    code = server.wait(10)
    elapsed = time.monotonic() - signalled
    thread.join(10)
    assert elapsed < 3, elapsed
    assert elapsed > 0.8, elapsed
    assert "status" not in result or result["status"] != 200, result
    assert code == 0
    assert "Traceback" not in "\n".join(server.lines[start:]), server.log


def test_second_signal_stops_at_once(greenserve, tmp_path, mode):
    server = greenserve(*mode, "--graceful-timeout", "20", "probe:app")
    result: dict = {}
    thread = _slow_request(server, 10, result, tmp_path / "entered")
    start = len(server.lines)
    server.send_signal(signal.SIGTERM)
    server.wait_for(r"Worker \d+: SIGTERM: graceful shutdown", start=start)  # the first stop has begun
    signalled = time.monotonic()
    server.send_signal(signal.SIGINT)
    server.wait(10)
    assert time.monotonic() - signalled < 3
    thread.join(10)
    assert result.get("status") != 200
