"""Streaming through the bridge: request bodies with backpressure, responses to slow
clients, and clients that disconnect in the middle of a response."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time

import pytest
import requests

from tests.asgi.conftest import rss_kb, wait_for_file
from tests.conftest import recv_until, request_bytes

MB = 1024 * 1024


def sent_by_app(server, key: str) -> int:
    """How many bytes the ``/big?key=KEY`` response's ``send()`` calls have accepted so far."""
    return requests.get(server.url + f"/progress?key={key}", timeout=5).json()["sent"]


def wait_held_back(server, key: str, settle: float = 0.5, timeout: float = 15.0) -> int:
    """Wait until the app streaming ``key`` stops sending (backpressure holds it); the bytes sent.

    The socket buffers fill at the machine's pace: poll until the count has
    stopped growing, instead of guessing how long that takes.
    """
    deadline = time.monotonic() + timeout
    last = sent_by_app(server, key)
    while True:
        time.sleep(settle)
        sent = sent_by_app(server, key)
        if sent == last and sent > 0:
            return sent
        if time.monotonic() > deadline:
            raise AssertionError(f"the app was still sending after {timeout} s ({sent / MB:.1f} MB)")
        last = sent


@pytest.fixture(scope="module")
def server(module_serve):
    return module_serve("--single-process", "raw_app:app")


@pytest.fixture(scope="module")
def fastapi_server(module_serve):
    return module_serve("--single-process", "fastapi_app:app")


class RSSMonitor:
    """Samples a process's RSS in a thread while a block runs: ``peak - baseline``."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.baseline = rss_kb(pid)
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kb(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> RSSMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, rss_kb(self.pid))

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.baseline) / 1024


def warm_up(server) -> None:
    """A small upload first, so one-off allocations do not count as growth."""
    for _ in range(3):
        requests.post(server.url + "/slow-read?delay=0", data=os.urandom(MB), timeout=10).raise_for_status()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_upload_to_a_slow_reader_is_not_buffered(server, chunked):
    payload = os.urandom(20 * MB)
    warm_up(server)
    body = (payload[i : i + 256 * 1024] for i in range(0, len(payload), 256 * 1024)) if chunked else payload
    with RSSMonitor(server.proc.pid) as memory:
        started = time.monotonic()
        response = requests.post(server.url + "/slow-read?delay=0.002", data=body, timeout=60)
        elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["size"] == len(payload)
    assert result["sha256"] == hashlib.sha256(payload).hexdigest()
    # Read one socket read at a time: many pieces, none larger than the bridge's chunk.
    assert result["biggest"] <= 64 * 1024, result
    assert result["chunks"] >= len(payload) // (64 * 1024), result
    assert elapsed >= result["chunks"] * 0.002 * 0.8  # the app really read slowly
    assert memory.growth_mb < 8, f"worker RSS grew by {memory.growth_mb:.1f} MB for a 20 MB upload"


def test_response_to_a_client_that_does_not_read(server):
    """200 MB streamed in 64 KB pieces to a client that never reads: the app is held
    back by send() (backpressure) and the worker's memory stays flat."""
    pid = server.proc.pid
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # no receive autotuning
    sock.settimeout(5)
    sock.connect(server.address)
    with sock:
        baseline = rss_kb(pid)
        sock.sendall(request_bytes("GET", "/big?key=stalled"))
        recv_until(sock, b"\r\n\r\n")  # the head and maybe a little body; then stop reading
        sent_then = wait_held_back(server, "stalled")
        time.sleep(1.0)
        sent_later = sent_by_app(server, "stalled")
        growth_mb = (rss_kb(pid) - baseline) / 1024
    assert 0 < sent_then < 40 * MB, f"the app sent {sent_then / MB:.1f} MB to a client that reads nothing"
    assert sent_later == sent_then, "the app kept producing while nothing was written"
    assert growth_mb < 30, f"worker RSS grew by {growth_mb:.1f} MB"


@pytest.mark.parametrize("stalled", [False, True], ids=["reading", "stalled"])
def test_send_raises_once_the_client_is_gone(server, stalled):
    """ASGI 2.4: after the client left, the app's ``send()`` raises an OSError (it must
    not hang), whether the client left while reading or while the socket was full."""
    key = f"gone-{stalled}"
    marker = server.markers / f"{key}.json"
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(5)
    sock.connect(server.address)
    with sock:
        sock.sendall(request_bytes("GET", f"/big?key={key}&marker={marker}"))
        received = 0
        while received < MB:
            received += len(sock.recv(65536))
        if stalled:
            wait_held_back(server, key)  # the socket buffers are full
    outcome = wait_for_file(marker, timeout=5)
    assert outcome["error"] is not None, outcome
    assert outcome["sent"] < 40 * MB


def test_response_streams_fully_to_a_reading_client(server):
    total = 32 * MB
    received = 0
    with requests.get(server.url + f"/big?key=full&total={total}", stream=True, timeout=30) as response:
        for piece in response.iter_content(chunk_size=1024 * 1024):
            received += len(piece)
    assert received == total


def read_events(sock: socket.socket, count: int) -> bytes:
    data = recv_until(sock, b"\r\n\r\n")
    while data.count(b"data: ") < count:
        chunk = sock.recv(65536)
        assert chunk, "closed early"
        data += chunk
    return data


def test_disconnect_stops_an_infinite_sse_generator(fastapi_server, tmp_path):
    marker = tmp_path / "sse-forever.json"
    with socket.create_connection(fastapi_server.address, timeout=5) as sock:
        sock.sendall(request_bytes("GET", f"/sse-forever?marker={marker}"))
        data = read_events(sock, 5)
        assert b"200 OK" in data.split(b"\r\n", 1)[0]
    closed_at = time.time()
    outcome = wait_for_file(marker, timeout=5)
    assert outcome["stopped_after"] >= 5
    assert outcome["at"] - closed_at < 3
    # The worker still serves.
    assert requests.get(fastapi_server.url + "/items/7", timeout=5).json()["item_id"] == 7


def test_disconnect_is_delivered_to_a_waiting_receive(server):
    marker = server.markers / "wait-disconnect.json"
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(request_bytes("POST", f"/wait-disconnect?marker={marker}", body=b"hello"))
        recv_until(sock, b"waiting:hello")
        time.sleep(0.2)
        assert not marker.exists(), "receive() returned before the client left"
    outcome = wait_for_file(marker, timeout=5)
    assert outcome["message"] == {"type": "http.disconnect"}
    assert requests.get(server.url + "/pid", timeout=5).status_code == 200


def test_disconnect_while_streaming_and_listening(server):
    marker = server.markers / "stream-and-listen.json"
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(request_bytes("GET", f"/stream-and-listen?marker={marker}"))
        read_events(sock, 3)
    closed_at = time.time()
    outcome = wait_for_file(marker, timeout=5)
    assert outcome["message"] == {"type": "http.disconnect"}
    assert outcome["at"] - closed_at < 2
    assert requests.get(server.url + "/pid", timeout=5).status_code == 200


def test_many_disconnects_do_not_leak_or_wedge(server):
    """20 clients abandon streams; the worker keeps answering promptly."""
    before = requests.get(server.url + "/tasks", timeout=5).json()
    for i in range(20):
        with socket.create_connection(server.address, timeout=5) as sock:
            sock.sendall(request_bytes("GET", f"/stream-and-listen?marker=leak-{i}.json"))
            read_events(sock, 1)
    for i in range(20):
        wait_for_file(server.markers / f"leak-{i}.json", timeout=5)
    started = time.monotonic()
    assert requests.get(server.url + "/pid", timeout=5).status_code == 200
    assert time.monotonic() - started < 2
    after = requests.get(server.url + "/tasks", timeout=5).json()
    # (Tasks leaked by earlier tests may have been garbage-collected meanwhile.)
    assert len(after["tasks"]) <= len(before["tasks"]), f"app tasks before {before}, after {after}"
