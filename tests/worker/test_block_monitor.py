"""Tier (b): the blocker report's monitor in this process, on a hub blocked by an unpatched sleep.

Nothing is monkey-patched here (see conftest.py), so ``time.sleep`` holds the
gevent hub exactly as a C call that does not yield would.
"""

from __future__ import annotations

import logging
import re
import time

import gevent
import pytest

from greenserve.worker.blocker import BlockMonitor
from tests.worker.conftest import wait_serving

DURATION = re.compile(r"blocked for ([\d.]+) s")


@pytest.fixture
def monitor():
    """``monitor(threshold)`` starts a BlockMonitor; returns the list each counted block appends to."""
    started: list[BlockMonitor] = []

    def start(threshold: float) -> list[int]:
        blocks: list[int] = []
        watching = BlockMonitor(threshold, lambda frame: "GET /slow", lambda: blocks.append(1), quiet=0.0)
        started.append(watching)
        watching.start()
        gevent.sleep(threshold)  # a few beats before anything blocks
        return blocks

    yield start
    for watching in started:
        watching.stop()


def test_a_block_past_the_threshold_is_reported_with_its_duration_and_request(monitor, caplog):
    blocks = monitor(0.1)
    with caplog.at_level(logging.WARNING, logger="greenserve.error"):
        time.sleep(0.25)  # the hub cannot run: a block
        wait_serving(lambda: blocks, 5, "the block to be counted")
    assert blocks == [1]
    (message,) = [r.getMessage() for r in caplog.records if "Event loop blocked" in r.getMessage()]
    assert 0.2 <= float(DURATION.search(message).group(1)) < 1.0, message
    assert "serving GET /slow" in message
    assert "test_block_monitor.py" in message  # the blocking code's stack


def test_blocks_shorter_than_the_threshold_are_not_reported(monitor, caplog):
    blocks = monitor(0.3)  # a beat is at most 0.15 s old when the loop runs: room for a late timer
    with caplog.at_level(logging.WARNING, logger="greenserve.error"):
        for _ in range(5):
            time.sleep(0.03)
            gevent.sleep(0.05)  # the loop runs between the short blocks
        gevent.sleep(0.4)  # the watcher has looked since (it would have seen a block by now)
    assert blocks == []
    assert not [r for r in caplog.records if "Event loop blocked" in r.getMessage()]
