"""``--worker-connections``: idle keep-alive connections make room; busy ones make clients wait."""

from __future__ import annotations

import http.client
import threading
import time
from pathlib import Path

import requests

from tests.conftest import ResponseReader, request_bytes, wait_until


def _keep_alive_connection(server):
    sock = server.connect()
    sock.sendall(request_bytes("GET", "/list"))
    assert ResponseReader(sock).read().body == b"abcdef"
    return sock


def _closed(sock) -> bool:
    sock.settimeout(0.2)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_idle_connections_make_room(greenserve):
    server = greenserve("--worker-connections", "5", "--keep-alive", "30", "probe:app")
    idle = [_keep_alive_connection(server) for _ in range(5)]
    try:
        started = time.monotonic()
        response = requests.get(server.url + "/list", timeout=10)
        assert response.content == b"abcdef"
        assert time.monotonic() - started < 2
        assert any(_closed(sock) for sock in idle), "an idle connection should have been closed"
    finally:
        for sock in idle:
            sock.close()


def _busy(server, seconds: float, entered: Path, results: list, keep_open: list, close: bool) -> None:
    host, port = server.address
    conn = http.client.HTTPConnection(host, port, timeout=20)
    headers = {"Connection": "close"} if close else {}
    conn.request("GET", f"/sleep?s={seconds}&entered={entered}", headers=headers)
    response = conn.getresponse()
    results.append((response.status, response.read(), time.monotonic()))
    keep_open.append(conn)  # a keep-alive connection stays open (idle) afterwards


def _run_busy_then_sixth(
    server, markers: Path, close: bool, timeout: float = 20
) -> tuple[list, float, float]:
    results: list = []
    conns: list = []
    entered = [markers / f"busy-{i}" for i in range(5)]
    threads = [
        threading.Thread(target=_busy, args=(server, 1.5, path, results, conns, close), daemon=True)
        for path in entered
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    assert wait_until(lambda: all(path.exists() for path in entered), 10), (
        f"the five requests did not all reach the application:\n{server.log}"
    )
    try:
        response = requests.get(server.url + "/list", timeout=timeout)
        sixth_done = time.monotonic() - started
        assert response.content == b"abcdef"
        for thread in threads:
            thread.join(20)
        first_busy_done = min(done for _, _, done in results) - started
        return results, sixth_done, first_busy_done
    finally:
        for conn in conns:
            conn.close()


def test_busy_connections_make_new_clients_wait(greenserve, tmp_path):
    server = greenserve("--worker-connections", "5", "--keep-alive", "30", "probe:app")
    results, sixth_done, first_busy_done = _run_busy_then_sixth(server, tmp_path, close=True)
    assert [status for status, _, _ in results] == [200] * 5
    assert sixth_done >= 1.3, "the sixth client was served while five requests were busy"
    assert sixth_done < first_busy_done + 2


def test_busy_keep_alive_connections_that_go_idle_make_room(greenserve, tmp_path):
    """When a busy keep-alive connection finishes, it is idle: the waiting client gets its slot.

    The waiting client must not wait for the keep-alive timeout (10 s here).
    """
    server = greenserve("--worker-connections", "5", "--keep-alive", "10", "probe:app")
    results, sixth_done, first_busy_done = _run_busy_then_sixth(server, tmp_path, close=False, timeout=5)
    assert [status for status, _, _ in results] == [200] * 5
    assert sixth_done >= 1.3
    assert sixth_done < first_busy_done + 2, (sixth_done, first_busy_done)
