"""A client that goes away, or --request-timeout, ends the ASGI application's task.

The application hears ``http.disconnect`` at once; a task that does not stop
by itself is cancelled after ``--asgi-cancel-grace``.
"""

from __future__ import annotations

import socket
import time

import pytest
import requests

from tests.conftest import request_bytes

from .conftest import wait_for_file

pytestmark = pytest.mark.timeout(60)


def _leave_after_start(server, path: str, started) -> float:
    """Send a request, wait until the app runs it, then close the connection; returns when."""
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(request_bytes("GET", path))
        wait_for_file(started, timeout=5)
    return time.time()


@pytest.mark.parametrize(("grace", "lower", "upper"), [("0", 0.0, 1.5), ("2", 1.8, 4.0)])
def test_a_task_that_ignores_the_client_leaving_is_cancelled_after_the_grace(serve, grace, lower, upper):
    server = serve("--single-process", "--asgi-cancel-grace", grace, "cancel_app:app")
    marker = server.markers / "ignore.json"
    left = _leave_after_start(server, f"/ignore?marker={marker}", server.markers / "ignore.json.started")
    outcome = wait_for_file(marker, timeout=8)
    assert outcome["outcome"] == "cancelled"
    assert lower <= outcome["at"] - left <= upper, outcome["at"] - left


def test_a_listening_task_hears_the_disconnect_before_any_cancellation(serve):
    server = serve("--single-process", "--asgi-cancel-grace", "5", "cancel_app:app")
    marker = server.markers / "listen.json"
    left = _leave_after_start(server, f"/listen?marker={marker}", server.markers / "listen.json.started")
    outcome = wait_for_file(marker, timeout=5)
    assert outcome["outcome"] == "disconnect"
    assert outcome["at"] - left < 2.0


def test_request_timeout_answers_504_then_cancels_after_the_grace(serve):
    server = serve("--single-process", "--request-timeout", "1", "--asgi-cancel-grace", "1", "cancel_app:app")
    marker = server.markers / "timeout.json"
    with socket.create_connection(server.address, timeout=10) as sock:
        sent = time.time()
        sock.sendall(request_bytes("GET", f"/ignore?marker={marker}"))
        head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 504 ")
    outcome = wait_for_file(marker, timeout=8)
    assert outcome["outcome"] == "cancelled"
    assert 1.5 <= outcome["at"] - sent <= 4.0
    # The worker still serves.
    assert requests.get(server.url + "/quick", timeout=5).text == "late"
