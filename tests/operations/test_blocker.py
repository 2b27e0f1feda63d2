"""The blocker report: a view that holds the event loop in C is named in one warning, and counted.

The view calls ``usleep`` through ctypes, which gevent cannot patch: the
worker's whole event loop stops for 300 ms, as with psycopg2 without
psycogreen or a C library doing blocking I/O.
"""

from __future__ import annotations

import os
import re

import pytest

from tests.conftest import wait_until
from tests.master.conftest import Master
from tests.operations.conftest import request, scrape, scrape_until, start

pytestmark = pytest.mark.skipif(os.name != "posix", reason="a pre-fork master: POSIX only")

WARNING = re.compile(r"\[WARNING\] Event loop blocked for (?P<seconds>[\d.]+) s \(--block-threshold 0\.1 s\)")
LOG_LINE = re.compile(r"^\[[^\]]+\] \[\d+\] \[\w+\] ")


def reports(server: Master) -> list[str]:
    """Each blocker warning with the stack lines that follow it (up to the next log line)."""
    with server._cond:
        lines = list(server.lines)
    found: list[list[str]] = []
    current: list[str] | None = None
    for line in lines:
        if LOG_LINE.match(line):
            current = [line] if WARNING.search(line) else None
            if current is not None:
                found.append(current)
        elif current is not None:
            current.append(line)
    return ["\n".join(report) for report in found]


def test_a_blocking_view_is_named_with_its_request_and_duration(master, tmp_path):
    server, base, _ = start(master, tmp_path, "--block-threshold", "0.1", workers=1)
    assert request(server.address, "GET", "/block?ms=300&who=me") == (200, b"blocked")
    assert wait_until(lambda: reports(server), 5), server.log
    report = reports(server)[0]
    header = report.splitlines()[0]
    seconds = float(WARNING.search(header).group("seconds"))
    assert 0.25 <= seconds < 2.0, header
    assert "serving GET /block?ms=300&who=me" in header
    assert "in hold_the_hub_in_c" in report
    assert "metrics_app.py" in report
    assert scrape(base).value("greenserve_event_loop_blocked_total") == 1


def test_blocks_within_the_quiet_period_are_counted_not_logged(master, tmp_path):
    server, base, _ = start(master, tmp_path, "--block-threshold", "0.1", workers=1)
    for _ in range(4):
        assert request(server.address, "GET", "/block?ms=300") == (200, b"blocked")
    scrape_until(base, lambda s: s.value("greenserve_event_loop_blocked_total") == 4)
    assert len(reports(server)) == 1, server.log
    # After the quiet period (10 s) the next block is logged, saying how many were not:
    # each poll blocks once more until then.

    def second_warning() -> bool:
        if len(reports(server)) >= 2:
            return True
        request(server.address, "GET", "/block?ms=300")
        return len(reports(server)) >= 2

    assert wait_until(second_warning, 20, 0.3), server.log
    blocked = scrape_until(base, lambda s: s.value("greenserve_event_loop_blocked_total") >= 5).value(
        "greenserve_event_loop_blocked_total"
    )
    second = reports(server)[1].splitlines()[0]
    held_back = int(re.search(r"\((\d+) more blocks since the last report\)", second).group(1))
    assert held_back == blocked - 2, (second, blocked)


def test_a_cooperative_app_is_never_reported(master, tmp_path):
    server, base, _ = start(master, tmp_path, "--block-threshold", "0.1", workers=1)
    # Requests that take longer than the threshold but yield to the loop are no blocks.
    for _ in range(3):
        assert request(server.address, "GET", "/sleep?s=0.3") == (200, b"slept")
    result = scrape_until(base, lambda s: s.value("greenserve_event_loop_lag_seconds_count") >= 4)
    assert result.value("greenserve_event_loop_blocked_total") == 0
    assert "Event loop blocked" not in server.log
