"""Workers sharing a listening socket share its clients; keep-alive clients lose nothing.

Tier (c): the real ``greenserve`` command (``tests/master/apps/mapp.py``,
whose ``/`` answers the worker's pid). Without balancing, the worker that
wakes first takes every client of a burst. With it, each worker takes about
its share, whether clients keep their connections or open one per request;
and replacing, adding, removing or losing workers under keep-alive load
fails no request except those a killed worker held.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import threading
import time
from collections import Counter

import pytest

from tests.conftest import wait_until

from .conftest import alive

pytestmark = pytest.mark.timeout(60)

CLIENTS = 20


def open_together(address: tuple[str, int], count: int) -> tuple[Counter[int], threading.Event, list]:
    """``count`` keep-alive connections opened at once, each answered once: which worker took each.

    The connections stay open (both workers hold theirs while they are
    counted) until the returned event is set; the list collects errors.
    """
    barrier = threading.Barrier(count, timeout=10)
    release = threading.Event()
    pids: list[int] = []
    errors: list = []
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection(*address, timeout=10)
        try:
            barrier.wait()
            conn.request("GET", "/")
            response = conn.getresponse()
            body = response.read()
            assert response.status == 200 and not response.will_close, (response.status, body)
            with lock:
                pids.append(int(body))
            release.wait(20)
        except Exception as exc:
            with lock:
                errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    assert wait_until(lambda: len(pids) + len(errors) == count, 15), f"{len(pids)} answered, {errors}"
    return Counter(pids), release, errors


@pytest.mark.parametrize(("workers", "fewest", "most"), [(2, 8, 12), (4, 3, 7)])
def test_keep_alive_connections_opened_together_are_shared(master, workers, fewest, most):
    server = master("mapp:app", "--workers", str(workers))
    pids = server.wait_workers(lambda found: len(found) == workers)
    share, release, errors = open_together(server.address, CLIENTS)
    try:
        assert errors == []
        assert set(share) <= set(pids)
        counts = [share[pid] for pid in pids]
        assert all(fewest <= count <= most for count in counts), f"connections per worker: {counts}"
    finally:
        release.set()


def test_short_connections_are_shared(master, load):
    server = master("mapp:app", "--workers", "2")
    pids = server.wait_workers(lambda found: len(found) == 2)
    with load(server.address, threads=10, pause=0.005) as traffic:
        traffic.wait_ok(1, timeout=10)
        began = time.monotonic()
        assert wait_until(lambda: time.monotonic() - began >= 1.5 and traffic.ok >= 200, 10, 0.05)
    assert not traffic.failures, traffic.summary()
    total = sum(traffic.pids.values())
    shares = [traffic.pids[pid] / total for pid in pids]
    assert all(0.35 <= share <= 0.65 for share in shares), f"shares {shares}: {traffic.summary()}"


def test_kill_9_fails_only_the_killed_workers_clients_and_all_reconnect(master, load):
    server = master("mapp:app", "--workers", "2")
    before = server.wait_workers(lambda found: len(found) == 2)
    with load(server.address, threads=CLIENTS, pause=0.01, keep_alive=True) as traffic:
        traffic.wait_every_client_ok_after(traffic.started, timeout=10)
        traffic.wait_pid({before[0]})
        traffic.wait_pid({before[1]})
        victim = before[0]
        on_victim = {client for client, pid in dict(traffic.last_pid).items() if pid == victim}
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        after = server.wait_workers(lambda found: len(found) == 2 and victim not in found, timeout=10)
        (replacement,) = set(after) - set(before)
        traffic.wait_every_client_ok_after(killed_at, timeout=10)
        recovered = len(traffic.failures)
        traffic.wait_ok(2 * CLIENTS)
    # Only the clients whose connection the killed worker held (about half of them), each once.
    assert set(traffic.client_failures) <= on_victim, traffic.summary()
    assert len(traffic.client_failures) <= CLIENTS // 2 + 2, traffic.summary()
    assert len(traffic.failures) == recovered, f"failures after recovery: {traffic.summary()}"
    assert all(count == 1 for count in traffic.client_failures.values()), traffic.summary()
    server.wait_for(rf"Worker {victim} died unexpectedly \(killed by SIGKILL\)")
    assert alive(replacement)


def _stopped(server, pids, timeout: float = 10.0) -> None:
    """Wait for the master's log line saying each worker in ``pids`` has exited."""
    for pid in pids:
        server.wait_for(rf"\] Worker {pid} stopped \(", timeout=timeout)


def test_hup_ttin_ttou_under_keep_alive_load_fail_nothing(master, load):
    server = master("mapp:app", "--workers", "2")
    first = server.wait_workers(lambda found: len(found) == 2)
    with load(server.address, threads=CLIENTS, pause=0.005, keep_alive=True) as traffic:
        traffic.wait_every_client_ok_after(traffic.started, timeout=10)
        generation = first
        for _ in range(2):
            server.send_signal(signal.SIGHUP)
            new = server.wait_workers(
                lambda found, old=generation: len(found) == 2 and not set(found) & set(old), timeout=15
            )
            _stopped(server, generation)
            traffic.wait_pid(new, timeout=5)
            generation = new
        server.send_signal(signal.SIGTTIN)
        server.wait_for(r"SIGTTIN: 3 workers")
        grown = server.wait_workers(lambda found: len(found) == 3, timeout=10)
        (added,) = set(grown) - set(generation)
        # Keep-alive clients stay where they are: the new worker waits for new connections.
        server.wait_for(rf"\] Worker {added} serving ", timeout=10)
        mark = len(server.lines)
        server.send_signal(signal.SIGTTOU)
        line = server.wait_for(r"Stopping worker \d+ \(2 workers wanted\)", start=mark)
        removed = int(line.split("Stopping worker ")[1].split()[0])
        _stopped(server, [removed])
        traffic.wait_every_client_ok_after(time.monotonic(), timeout=5)
    assert not traffic.failures, f"{traffic.summary()}\n{server.log}"
    assert traffic.connections > CLIENTS  # clients were told to reconnect, and did
    assert server.workers() == sorted(set(grown) - {removed})


def test_max_requests_under_keep_alive_load_fails_nothing(master, load):
    server = master("mapp:app", "--workers", "2", "--max-requests", "300", "--max-requests-jitter", "50")
    first = server.wait_workers(lambda found: len(found) == 2)
    with load(server.address, threads=CLIENTS, pause=0.02, keep_alive=True) as traffic:

        def several_retired() -> bool:
            first_gone = all(server.count(rf"\] Worker {pid} stopped \(") for pid in first)
            return first_gone and server.count(r"\] Worker \d+ stopped \(") >= 3

        assert wait_until(several_retired, 20, 0.1), f"{traffic.summary()}\n{server.log}"
        traffic.wait_every_client_ok_after(time.monotonic(), timeout=5)
    assert not traffic.failures, f"{traffic.summary()}\n{server.log}"
    assert server.count(r"reached --max-requests") >= 3
    assert traffic.connections > CLIENTS  # retiring workers told their clients to reconnect


def test_sigterm_answers_every_request_sent_on_keep_alive_connections(master, load):
    server = master("mapp:app", "--workers", "2", graceful_timeout=10)
    server.wait_workers(lambda found: len(found) == 2)
    address = server.address
    with load(
        address, path="/sleep?s=0.3", threads=CLIENTS, pause=0, keep_alive=True, refused_ok=True
    ) as traffic:
        traffic.wait_every_client_ok_after(traffic.started, timeout=10)
        # Every client has a request in flight now (each sends the next one at once).
        answered_before = traffic.ok
        server.send_signal(signal.SIGTERM)
        assert server.wait(10) == 0, server.log
        assert wait_until(lambda: traffic.alive() == 0, 10), traffic.summary()
    assert not traffic.failures, f"{traffic.summary()}\n{server.log}"
    assert traffic.ok - answered_before >= CLIENTS  # the requests in flight at the signal, at least
    assert traffic.refused == CLIENTS, traffic.summary()  # each client's next connection
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=2)
