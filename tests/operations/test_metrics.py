"""``--metrics-bind``: a real master with two workers, scraped by prometheus_client's own parser.

What a user's dashboard depends on: the counters agree with the access log
request for request, the histograms are well formed, every worker shows up,
the gauges describe the pool, and no counter ever goes backwards when workers
are replaced (SIGHUP) or die (``kill -9``).
"""

from __future__ import annotations

import os
import signal
import socket
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from websockets.sync.client import connect as ws_connect

from tests.conftest import read_until_close, wait_until
from tests.master.conftest import http_get
from tests.operations.conftest import (
    APPS,
    METRICS_AT,
    Scrape,
    fetch,
    metrics_url,
    request,
    scrape,
    scrape_until,
    start,
)

#: The methods counted by name (greenserve.metrics.METHODS); any other is "other".
NAMED_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}

pytestmark = pytest.mark.skipif(os.name != "posix", reason="a pre-fork master: POSIX only")


def assert_histogram(result: Scrape, name: str) -> float:
    """Buckets cumulative and ending in +Inf == _count; returns the count."""
    buckets = sorted(
        (float(dict(labels)["le"]), value) for labels, value in result.series(f"{name}_bucket").items()
    )
    assert buckets[-1][0] == float("inf"), buckets
    values = [value for _, value in buckets]
    assert values == sorted(values), f"{name} buckets are not cumulative: {buckets}"
    count = result.value(f"{name}_count")
    assert values[-1] == count
    assert result.value(f"{name}_sum") >= 0
    return count


def assert_not_below(before: Scrape, after: Scrape) -> None:
    went_back = {
        key: (value, after.counters().get(key))
        for key, value in before.counters().items()
        if after.counters().get(key, -1) < value
    }
    assert not went_back, f"counters went backwards (before, after): {went_back}"


#: (method, path, request body): one round of the mixed load.
MIX = [
    ("GET", "/", None),
    ("GET", "/missing", None),
    ("POST", "/echo", b"x" * 1000),
    ("PUT", "/echo", b"y" * 37),
    ("HEAD", "/", None),
    ("DELETE", "/status?code=204", None),
    ("OPTIONS", "/status?code=200", None),
    ("PATCH", "/status?code=302", None),
    ("PURGE", "/status?code=200", None),
    ("GET", "/status?code=503", None),
]


def access_lines(path: Path) -> list[tuple[str, int, int]]:
    text = path.read_text() if path.exists() else ""
    lines = text.split("\n")[:-1]  # a line still being written waits for the next read
    return [(m, int(s), int(b)) for m, s, b in (line.split() for line in lines)]


# -- tests --------------------------------------------------------------------------------


def test_counters_match_the_access_log_under_load(master, tmp_path):
    server, base, access = start(master, tmp_path, "--worker-connections", "77")
    jobs = [*MIX * 30, *[("GET", "/error", None)] * 3]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda job: request(server.address, *job), jobs))
    # Both workers must have answered (the kernel spreads new connections; keep asking until it has).
    pids = {
        int(body)
        for (method, path, _), (_, body) in zip(jobs, answers, strict=True)
        if path == "/" and method == "GET"
    }
    extra = []

    def both_answered() -> bool:
        status, body = http_get(server.address, "/")
        extra.append((status, body))
        pids.add(int(body))
        return len(pids) == 2

    assert wait_until(both_answered, 10, 0), f"one worker answered everything: {pids}"
    sent = len(jobs) + len(extra)
    statuses = Counter(status for status, _ in answers)
    assert statuses[500] == 3 and statuses[404] == 30, statuses

    assert wait_until(lambda: len(access_lines(access)) == sent, 10), f"{len(access_lines(access))} of {sent}"
    result = scrape_until(base, lambda s: s.value("greenserve_requests_total") == sent)

    logged = Counter(
        (method if method in NAMED_METHODS else "other", f"{status // 100}xx")
        for method, status, _ in access_lines(access)
    )
    counted = {
        (dict(labels)["method"], dict(labels)["status"]): value
        for labels, value in result.series("greenserve_requests_total").items()
    }
    assert counted == logged
    # Per worker: both workers, adding up to the total.
    assert len(result.label_values("greenserve_worker_requests_total", "worker")) == 2
    assert result.value("greenserve_worker_requests_total") == sent

    assert assert_histogram(result, "greenserve_request_duration_seconds") == sent
    assert 0 < result.value("greenserve_request_duration_seconds_sum") < sent * 1.0

    body_sent = sum(len(body or b"") for _, _, body in jobs)
    assert result.value("greenserve_request_body_bytes_total") == body_sent
    received = sum(len(body) for _, body in answers) + sum(len(body) for _, body in extra)
    logged_out = sum(size for _, _, size in access_lines(access))
    assert result.value("greenserve_response_body_bytes_total") == logged_out
    assert received <= logged_out  # HEAD's body is not sent; what the client read was all sent

    # The pool: each worker's limit, both running, as many as wanted.
    assert set(result.series("greenserve_connections_limit").values()) == {77.0}
    assert len(result.series("greenserve_connections_limit")) == 2
    assert result.value("greenserve_workers", state="running") == 2
    assert result.value("greenserve_workers", state="wanted") == 2


def test_gauges_websockets_and_event_loop_lag(master, tmp_path):
    server, base, _ = start(master, tmp_path)
    host, port = server.address
    idle = [socket.create_connection(server.address, timeout=5) for _ in range(3)]
    busy = ThreadPoolExecutor(1)
    try:
        for sock in idle:  # one request each, then idle on keep-alive
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        slow = busy.submit(request, server.address, "GET", "/sleep?s=3")
        with ws_connect(f"ws://{host}:{port}/ws", open_timeout=5) as ws:
            ws.send("ping")
            assert ws.recv(timeout=5) == "ping"
            result = scrape_until(
                base,
                lambda s: (
                    s.value("greenserve_connections") >= 5
                    and s.value("greenserve_connections_busy") >= 1
                    and s.value("greenserve_websockets") == 1
                ),
            )
            assert result.value("greenserve_websocket_connections_total") == 1
            assert len(result.series("greenserve_connections_parked")) == 2
        assert slow.result(10) == (200, b"slept")
    finally:
        for sock in idle:
            sock.close()
        busy.shutdown(wait=False, cancel_futures=True)
    # The WebSocket was a GET answered with 101; its gauge drops once it is closed.
    result = scrape_until(
        base,
        lambda s: (
            s.value("greenserve_websockets") == 0
            and s.value("greenserve_requests_total", method="GET", status="1xx") == 1
        ),
    )
    assert result.value("greenserve_websocket_connections_total") == 1
    # The lag histogram: a sample every 0.25 s per worker, well under a second each when idle.
    result = scrape_until(base, lambda s: s.value("greenserve_event_loop_lag_seconds_count") >= 8)
    count = assert_histogram(result, "greenserve_event_loop_lag_seconds")
    assert result.value("greenserve_event_loop_lag_seconds_bucket", le="1.0") == count


def test_counters_never_go_backwards_across_reload_and_kill(master, tmp_path):
    server, base, _ = start(master, tmp_path)
    traffic = [request(server.address, *job) for job in MIX * 3]
    assert len(traffic) == 30
    first = scrape_until(base, lambda s: s.value("greenserve_requests_total") == 30)
    # Every cause has a series from the start (at 0), so increase() sees the first restart.
    restarts = first.series("greenserve_worker_restarts_total")
    assert set(restarts.values()) == {0}
    assert {dict(labels)["cause"] for labels in restarts} >= {"crash", "reload", "timeout", "max_requests"}

    old = set(server.workers())
    server.send_signal(signal.SIGHUP)
    new = set(server.wait_workers(lambda pids: len(pids) == 2 and not set(pids) & old, timeout=20))
    server.wait_for(r"Ready: 2 worker", start=0)
    request(server.address, "GET", "/")
    after_reload = scrape_until(base, lambda s: s.value("greenserve_requests_total") == 31)
    assert_not_below(first, after_reload)
    assert after_reload.value("greenserve_worker_restarts_total", cause="reload") == 2
    # The replaced workers' series are gone; the totals kept what they had counted.
    assert after_reload.value("greenserve_worker_requests_total") == 1

    victim = sorted(new)[0]
    os.kill(victim, signal.SIGKILL)
    server.wait_workers(lambda pids: len(pids) == 2 and victim not in pids, timeout=20)
    after_kill = scrape_until(base, lambda s: s.value("greenserve_workers", state="running") == 2)
    assert_not_below(after_reload, after_kill)
    assert after_kill.value("greenserve_requests_total") == 31
    assert after_kill.value("greenserve_worker_restarts_total", cause="crash") == 1
    assert after_kill.value("greenserve_worker_restarts_total", cause="reload") == 2


def test_timeouts_counted(master, tmp_path):
    server, base, _ = start(master, tmp_path, "--header-timeout", "0.3", "--keep-alive", "0.3", workers=1)
    silent = socket.create_connection(server.address, timeout=5)  # connects, never sends a byte
    talker = socket.create_connection(server.address, timeout=5)  # one request, then silence
    try:
        talker.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        _, closed = read_until_close(talker, 5)
        assert closed, "the keep-alive timeout did not close the idle connection"
        _, closed = read_until_close(silent, 5)
        assert closed, "the header timeout did not close the silent connection"
    finally:
        silent.close()
        talker.close()
    result = scrape_until(
        base,
        lambda s: (
            s.value("greenserve_timeouts_total", kind="header") == 1
            and s.value("greenserve_timeouts_total", kind="keep_alive") == 1
        ),
    )
    assert result.value("greenserve_timeouts_total", kind="client") == 0
    assert result.value("greenserve_timeouts_total", kind="request") == 0
    assert result.value("greenserve_timeouts_total", kind="heartbeat") == 0


def test_evictions_counted(master, tmp_path):
    server, base, _ = start(master, tmp_path, "--worker-connections", "2", workers=1)
    # The pool is full of two connections that sent nothing: a third client gets one's place.
    silent = [socket.create_connection(server.address, timeout=5) for _ in range(2)]
    try:
        scrape_until(base, lambda s: s.value("greenserve_connections") == 2)
        assert request(server.address, "GET", "/")[0] == 200
        scrape_until(base, lambda s: s.value("greenserve_evictions_total", kind="silent") >= 1)
    finally:
        for sock in silent:
            sock.close()
    scrape_until(base, lambda s: s.value("greenserve_connections") == 0)
    # Now two idle keep-alive connections: the one idle the longest makes room.
    idle = [socket.create_connection(server.address, timeout=5) for _ in range(2)]
    try:
        for sock in idle:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        assert request(server.address, "GET", "/")[0] == 200
        scrape_until(base, lambda s: s.value("greenserve_evictions_total", kind="idle") == 1)
    finally:
        for sock in idle:
            sock.close()


def test_healthz_and_readyz_through_boot_and_shutdown(master, tmp_path):
    gate = tmp_path / "gate"
    server = master(
        "-w",
        "2",
        "--metrics-bind",
        "127.0.0.1:0",
        "--graceful-timeout",
        "10",
        "gated_app:app",
        cwd=APPS,
        env={"GATE": str(gate)},
        ready=METRICS_AT,
        graceful_timeout=None,
    )
    base = metrics_url(server)
    # Booting: alive, not ready (the app is still importing).
    assert fetch(base + "/healthz")[0] == 200
    status, _, body = fetch(base + "/readyz")
    assert (status, body) == (503, "not ready\n")
    scrape(base)  # scrapes work before any worker is ready
    gate.touch()
    server.wait_for(r"Ready: 2 worker", timeout=30)
    assert fetch(base + "/readyz")[:3:2] == (200, "ready: 2 workers\n")
    assert fetch(base + "/nothing-here")[0] == 404
    # Draining (a request still in progress): alive, no longer ready.
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(request, server.address, "GET", "/sleep?s=3")
        assert wait_until(lambda: _busy(base), 5), "the slow request never started"
        server.send_signal(signal.SIGTERM)
        assert wait_until(lambda: fetch(base + "/readyz")[0] == 503, 5)
        assert fetch(base + "/healthz")[0] == 200
        assert slow.result(10) == (200, b"slept")


def _busy(base: str) -> bool:
    return scrape(base).value("greenserve_connections_busy") >= 1
