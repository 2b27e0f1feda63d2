"""Changing the set of workers under steady load: no request may fail.

Each test keeps a few client threads looping requests (a new connection each)
while the master replaces, adds, removes or loses workers, and checks every
request that was sent got a 200.
"""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from .conftest import alive, wait_gone

pytestmark = pytest.mark.timeout(60)


def test_hup_replaces_every_worker_without_failed_requests(master, load):
    server = master("mapp:app", "-w", "2")
    old = server.wait_workers(lambda pids: len(pids) == 2)
    with load(server.address) as traffic:
        traffic.wait_ok(20)
        traffic.wait_pid(old)
        server.send_signal(signal.SIGHUP)
        new = server.wait_workers(lambda pids: len(pids) == 2 and not set(pids) & set(old), timeout=15)
        traffic.wait_pid(new)
        mark = traffic.ok
        traffic.wait_ok(50)
    assert not traffic.failures, f"{traffic.summary()}\n{server.log}"
    assert traffic.ok > mark
    assert all(not alive(pid) for pid in old)
    assert server.proc.poll() is None


def test_ttin_adds_a_worker_under_load(master, load):
    server = master("mapp:app", "-w", "1")
    (first,) = server.wait_workers(lambda pids: len(pids) == 1)
    with load(server.address) as traffic:
        traffic.wait_ok(20)
        server.send_signal(signal.SIGTTIN)
        pids = server.wait_workers(lambda pids: len(pids) == 2, timeout=10)
        (added,) = set(pids) - {first}
        traffic.wait_pid({added}, timeout=10)
        traffic.wait_ok(30)
    assert not traffic.failures, f"{traffic.summary()}\n{server.log}"
    assert first in pids
    server.wait_for(r"SIGTTIN: 2 workers")


def test_ttou_removes_a_worker_under_load(master, load):
    server = master("mapp:app", "-w", "2")
    before = server.wait_workers(lambda pids: len(pids) == 2)
    with load(server.address) as traffic:
        traffic.wait_ok(20)
        server.send_signal(signal.SIGTTOU)
        after = server.wait_workers(lambda pids: len(pids) == 1, timeout=10)
        traffic.wait_ok(40)
    assert not traffic.failures, f"{traffic.summary()}\n{server.log}"
    assert set(after) < set(before)
    server.wait_for(r"SIGTTOU: 1 workers")


def test_max_requests_recycles_workers_under_load(master, load):
    server = master("mapp:app", "-w", "2", "--max-requests", "50", "--max-requests-jitter", "10")
    first = server.wait_workers(lambda pids: len(pids) == 2)
    with load(server.address, threads=3, pause=0.02) as traffic:
        assert server.wait_for(r"reached --max-requests", timeout=15)
        deadline = time.monotonic() + 20
        while server.count(r"Stopping worker \d+: replaced") < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        traffic.wait_ok(30)
    assert not traffic.failures, f"{traffic.summary()}\n{server.log}"
    assert server.count(r"Stopping worker \d+: replaced") >= 3, server.log
    assert len(traffic.pids) >= 4, traffic.summary()
    assert not set(first) & set(server.workers())
    # Retired workers exit: the set settles back to two.
    server.wait_workers(lambda pids: len(pids) == 2, timeout=10)


def test_usr2_upgrade_then_term_old_master_under_load(master, load, tmp_path):
    pidfile = tmp_path / "greenserve.pid"
    oldbin = tmp_path / "greenserve.pid.oldbin"
    server = master("mapp:app", "-w", "2", "--pidfile", str(pidfile))
    old_master = server.pid
    old_workers = server.wait_workers(lambda pids: len(pids) == 2)
    assert pidfile.read_text().strip() == str(old_master)
    new_master = 0
    try:
        with load(server.address) as traffic:
            traffic.wait_ok(20)
            server.send_signal(signal.SIGUSR2)
            line = server.wait_for(r"started a new master \(pid \d+\)", timeout=5)
            new_master = int(re.search(r"pid (\d+)\)", line).group(1))
            server.wait_for(rf"\[{new_master}\] \[INFO\] Ready: 2 worker", timeout=15)
            new_workers = server.wait_workers(lambda pids: len(pids) == 2, master_pid=new_master)
            assert not set(new_workers) & set(old_workers)
            assert pidfile.read_text().strip() == str(new_master)
            assert oldbin.read_text().strip() == str(old_master)
            # Both generations serve from the same sockets.
            traffic.wait_pid(new_workers, timeout=10)
            server.send_signal(signal.SIGTERM)
            assert server.wait(10) == 0, server.log
            assert all(wait_gone(pid, 5) for pid in old_workers)
            assert not oldbin.exists()
            assert pidfile.read_text().strip() == str(new_master)
            assert alive(new_master)
            mark, seen = traffic.ok, dict(traffic.pids)
            traffic.wait_ok(50)
            late = {pid for pid, count in traffic.pids.items() if count > seen.get(pid, 0)}
        assert not traffic.failures, f"{traffic.summary()}\n{server.log}"
        assert traffic.ok > mark
        assert late and late <= set(new_workers), traffic.summary()
        os.kill(new_master, signal.SIGTERM)
        assert wait_gone(new_master, 10), server.log
        assert all(wait_gone(pid, 5) for pid in new_workers)
        assert not pidfile.exists()
    finally:
        if new_master and alive(new_master):
            os.kill(new_master, signal.SIGKILL)


def test_kill_9_worker_is_replaced_and_only_its_requests_fail(master, load):
    server = master("mapp:app", "-w", "2")
    before = server.wait_workers(lambda pids: len(pids) == 2)
    threads = 4
    with load(server.address, threads=threads) as traffic:
        traffic.wait_pid(before)
        victim = before[0]
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        after = server.wait_workers(lambda pids: len(pids) == 2 and victim not in pids, timeout=2.0)
        replaced_in = time.monotonic() - killed_at
        (replacement,) = set(after) - set(before)
        traffic.wait_pid({replacement}, timeout=5)
        failed_before = len(traffic.failures)
        traffic.wait_ok(50)
    assert replaced_in < 2.0
    # At most the requests in flight on the killed worker: one per client thread.
    assert len(traffic.failures) <= threads, traffic.summary()
    assert len(traffic.failures) == failed_before, f"failures after recovery: {traffic.summary()}"
    server.wait_for(rf"Worker {victim} died unexpectedly \(killed by SIGKILL\)")
