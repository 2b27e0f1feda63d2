"""``--timeout`` (a worker whose event loop is blocked) and ``--request-timeout``."""

from __future__ import annotations

import re
import threading
import time

import pytest

from tests.conftest import read_until_close, recv_until, request_bytes, wait_until

from .conftest import wait_gone

pytestmark = pytest.mark.timeout(60)


def test_worker_spinning_the_cpu_is_killed_after_timeout_with_stack_dump(master, tmp_path):
    # --preload: workers boot in milliseconds, so a slow machine cannot push a
    # *booting* worker past --timeout (see the next test) and blur this one.
    server = master("mapp:app", "-w", "2", "--timeout", "2", "--preload")
    before = server.wait_workers(lambda pids: len(pids) == 2)
    mark = tmp_path / "spinner"
    spin = server.connect(timeout=15)
    try:
        spin.sendall(request_bytes("GET", f"/spin?mark={mark}"))
        assert wait_until(mark.exists, 5), server.log
        assert wait_until(lambda: mark.read_text().strip(), 2)
        spinner = int(mark.read_text())
        (other,) = set(before) - {spinner}
        started = time.monotonic()

        # While one worker spins, the other keeps serving.
        answered = []
        while time.monotonic() - started < 1.5:
            status, body = server.get("/", timeout=3)
            assert status == 200
            answered.append(int(body))
            time.sleep(0.05)
        assert set(answered) == {other}

        server.wait_for(rf"Worker {spinner} timed out", timeout=5)
        killed_after = time.monotonic() - started
        # The spinning request's connection is dropped, not answered.
        data, closed = read_until_close(spin, timeout=5)
        assert closed and not data.startswith(b"HTTP/1.1 200")
    finally:
        spin.close()
    assert 1.0 < killed_after < 5.0
    # The dump is one log record of many lines: wait until its greenlets' part has been read too.
    start = server.lines.index(server.wait_for(r"event loop blocked", timeout=5))
    server.wait_for(r"^Greenlet ", timeout=5, start=start)
    dump = server.log[server.log.index("event loop blocked") :]
    # The spinning function, with its file and line, in the blocking stack.
    assert re.search(r'mapp\.py", line \d+, in spin_the_cpu', dump), dump
    assert dump.index("spin_the_cpu") < dump.index("Greenlet "), dump
    assert wait_gone(spinner, 5)
    after = server.wait_workers(lambda pids: len(pids) == 2 and spinner not in pids, timeout=10)
    assert other in after
    (replacement,) = set(after) - {other}
    assert wait_until(lambda: server.get("/")[0] == 200, 5)
    server.wait_for(rf"Worker {spinner} was replaced after a timeout")
    # The master logs the boot right after the fork: the new pid can be seen before its line is read.
    server.wait_for(rf"Booting worker {replacement} ")
    assert server.count(rf"Booting worker {replacement} ") == 1


def test_timeout_does_not_kill_a_worker_that_is_still_booting(master):
    """``--timeout`` is about a blocked event loop; a worker still importing the app runs none yet.

    An application that takes longer than --timeout to import (or a loaded
    machine) must not turn into a kill-and-respawn loop that never serves.
    """
    server = master("slow_import:app", "-w", "1", "--timeout", "1", env={"IMPORT_DELAY": "2.5"}, ready=None)
    try:
        server.wait_for(r"\] Ready: ", timeout=8)
    finally:
        timed_out = server.count(r"timed out")
    assert timed_out == 0, server.log
    assert server.count(r"Booting worker") == 1, server.log
    assert server.get("/")[0] == 200


def test_request_timeout_answers_504_and_the_worker_keeps_serving(master):
    server = master("mapp:app", "-w", "1", "--request-timeout", "1")
    (worker,) = server.wait_workers(lambda pids: len(pids) == 1)
    started = time.monotonic()
    status, _ = server.get("/sleep?s=5", timeout=10)
    elapsed = time.monotonic() - started
    assert status == 504
    assert 0.8 < elapsed < 2.5, elapsed
    status, body = server.get("/")
    assert (status, body) == (200, str(worker).encode())
    assert server.workers() == [worker]
    server.wait_for(r"request cancelled after --request-timeout")


def test_request_timeout_closes_a_streaming_response_that_started(master):
    server = master("mapp:app", "-w", "1", "--request-timeout", "1")
    (worker,) = server.wait_workers(lambda pids: len(pids) == 1)
    with server.connect(timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(request_bytes("GET", "/stream?delay=5"))
        head = recv_until(sock, b"first chunk", timeout=3)
        assert head.startswith(b"HTTP/1.1 200")
        rest, closed = read_until_close(sock, timeout=5)
        elapsed = time.monotonic() - started
    assert closed, "the connection should be closed once the request is cancelled"
    assert b"second chunk" not in rest
    assert not (head + rest).endswith(b"0\r\n\r\n"), "a cancelled stream must not look complete"
    assert 0.8 < elapsed < 3.0, elapsed
    # The same worker carries on.
    assert server.get("/") == (200, str(worker).encode())


def test_request_timeout_leaves_other_requests_alone(master):
    """Only the overdue request is cancelled; concurrent quick ones are served."""
    server = master("mapp:app", "-w", "1", "--request-timeout", "1")
    results = {}

    def slow() -> None:
        results["slow"] = server.get("/sleep?s=5", timeout=10)[0]

    thread = threading.Thread(target=slow)
    thread.start()
    try:
        for _ in range(10):
            assert server.get("/sleep?s=0.05")[0] == 200
    finally:
        thread.join(10)
    assert results["slow"] == 504
