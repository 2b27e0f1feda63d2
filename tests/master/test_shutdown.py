"""Stopping the master: SIGTERM drains in-flight requests; SIGINT/SIGQUIT stop quickly."""

from __future__ import annotations

import signal
import socket
import threading
import time

import pytest

from tests.conftest import read_until_close, request_bytes, wait_until

from .conftest import accepted_by, http_get, listening, wait_gone

pytestmark = pytest.mark.timeout(60)


def _in_flight(server, count: int, seconds: float, marks) -> tuple[list, list[threading.Thread]]:
    """``count`` requests sleeping ``seconds`` each, started in threads; returns (results, threads)."""
    results: list = []
    lock = threading.Lock()

    def call() -> None:
        try:
            outcome = http_get(server.address, f"/sleep?s={seconds}&mark={marks}", timeout=15)
        except Exception as exc:
            outcome = exc
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=call, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    assert wait_until(lambda: len(list(marks.iterdir())) == count, 5), (
        f"only {len(list(marks.iterdir()))} of {count} requests reached the app\n{server.log}"
    )
    return results, threads


def test_sigterm_finishes_in_flight_requests_then_exits_0(master, tmp_path):
    server = master("mapp:app", "-w", "2", graceful_timeout=10)
    workers = server.wait_workers(lambda pids: len(pids) == 2)
    address = server.address
    marks = tmp_path / "marks"
    marks.mkdir()
    results, threads = _in_flight(server, 20, 1.5, marks)
    started = time.monotonic()
    server.send_signal(signal.SIGTERM)
    code = server.wait(10)
    exited_after = time.monotonic() - started
    for thread in threads:
        thread.join(5)
    assert len(results) == 20
    assert all(result == (200, b"slept") for result in results), results
    assert code == 0, server.log
    assert exited_after < 5.0, exited_after
    assert all(wait_gone(pid, 2) for pid in workers)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=2)


def test_sigterm_new_connections_during_the_drain_are_not_left_hanging(master, tmp_path):
    """While in-flight requests finish, a new client is refused or cut, never served late or stuck."""
    server = master("mapp:app", "-w", "1", graceful_timeout=10)
    marks = tmp_path / "marks"
    marks.mkdir()
    results, threads = _in_flight(server, 3, 3.0, marks)
    server.send_signal(signal.SIGTERM)
    server.wait_for(r"graceful shutdown, waiting up to", timeout=5)
    # Every copy of the listening socket (the master's, the worker's) closes as the drain begins.
    assert wait_until(lambda: not listening(server.port), 2), "still listening during the drain"
    assert not results, "the drain was over before the new client came"
    started = time.monotonic()
    try:
        outcome = http_get(server.address, "/", timeout=10)
    except OSError as exc:
        outcome = exc
    waited = time.monotonic() - started
    assert server.wait(10) == 0
    for thread in threads:
        thread.join(5)
    assert all(result == (200, b"slept") for result in results), results
    assert isinstance(outcome, (ConnectionRefusedError, ConnectionResetError)), outcome
    assert waited < 0.5, f"the new client waited {waited:.1f} s for {outcome!r}"


def test_sigterm_serves_a_connection_accepted_before_the_stop(master, tmp_path):
    """A client that connected before SIGTERM, and sends its request a moment later, is answered.

    Its connection was accepted by the worker, so no other process can
    answer it: closing it (as if it were an idle keep-alive connection) loses
    a request that was on time. Under load this is the client that got
    descheduled between connect() and send().
    """
    server = master("mapp:app", "-w", "1", graceful_timeout=10)
    (worker,) = server.wait_workers(lambda pids: len(pids) == 1)
    marks = tmp_path / "marks"
    marks.mkdir()
    results, threads = _in_flight(server, 1, 2.0, marks)  # keeps the worker draining
    with server.connect(timeout=5) as sock:
        # Accepted by the worker, waiting for its first request.
        assert wait_until(lambda: accepted_by(worker, sock), 5), "the worker did not accept the connection"
        server.send_signal(signal.SIGTERM)
        server.wait_for(rf"Worker {worker}: SIGTERM: graceful shutdown", timeout=5)
        time.sleep(0.2)
        sock.sendall(request_bytes("GET", "/"))
        data, closed = read_until_close(sock, timeout=5)
    for thread in threads:
        thread.join(5)
    assert results == [(200, b"slept")]
    assert data.startswith(b"HTTP/1.1 200"), f"got {data!r} (closed={closed})"
    assert data.endswith(str(worker).encode())
    assert server.wait(10) == 0


SLOW_CHILD_CONF = """
import os
import time


def _slow_to_start():
    with open(os.environ["FORK_LOG"], "a") as handle:
        handle.write(f"{os.getpid()}\\n")
    time.sleep(1.0)


# A busy machine may not run a new child for a while after fork(): make that while certain.
os.register_at_fork(after_in_child=_slow_to_start)
"""


def test_sigterm_reaches_a_worker_forked_just_before(master, tmp_path):
    """SIGTERM sent to a worker in the instant after fork must not be lost.

    Until the child resets the master's signal handlers, a signal runs the
    master's handler in the child, which only queues it there: the worker
    then boots, serves, and is SIGKILLed after --graceful-timeout + 2 s.
    """
    conf = tmp_path / "slow_child.conf.py"
    conf.write_text(SLOW_CHILD_CONF)
    forks = tmp_path / "forks"
    server = master("mapp:app", "-w", "1", "-c", str(conf), graceful_timeout=3, env={"FORK_LOG": str(forks)})
    server.send_signal(signal.SIGTTIN)
    assert wait_until(lambda: len(forks.read_text().split()) == 2, 5), server.log
    started = time.monotonic()
    server.send_signal(signal.SIGTERM)
    code = server.wait(10)
    elapsed = time.monotonic() - started
    assert code == 0
    assert server.count(r"did not stop in time: SIGKILL") == 0, server.log
    assert elapsed < 2.5, f"stopping took {elapsed:.1f} s\n{server.log}"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGQUIT])
def test_quick_stop_exits_0_quickly_with_slow_requests_in_flight(master, tmp_path, signum):
    server = master("mapp:app", "-w", "2", graceful_timeout=30)
    workers = server.wait_workers(lambda pids: len(pids) == 2)
    marks = tmp_path / "marks"
    marks.mkdir()
    results, threads = _in_flight(server, 4, 20, marks)
    started = time.monotonic()
    server.send_signal(signum)
    code = server.wait(10)
    elapsed = time.monotonic() - started
    for thread in threads:
        thread.join(5)
    assert code == 0, server.log
    assert elapsed < 3.0, elapsed
    assert all(wait_gone(pid, 2) for pid in workers)
    assert len(results) == 4 and not any(result == (200, b"slept") for result in results), results
    server.wait_for(rf"SIG{signum.name[3:]}: quick shutdown")
