"""A worker tunes Python's garbage collector once it is ready (``--gc-threshold``)."""

from __future__ import annotations

import gc
import json
import urllib.request

import pytest


def collector(server) -> dict:
    with urllib.request.urlopen(server.url + "/", timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.parametrize("mode", [["--single-process"], ["-w", "1"]], ids=["single-process", "master"])
def test_workers_freeze_start_up_and_raise_the_first_threshold(greenserve, mode):
    state = collector(greenserve(*mode, "gc_probe:app"))
    assert state["threshold"] == [10_000, *gc.get_threshold()[1:]]
    assert state["frozen"] > 1000  # the modules and the application, out of later collections


def test_gc_threshold_sets_the_first_generation(greenserve):
    state = collector(greenserve("--single-process", "--gc-threshold", "2500", "gc_probe:app"))
    assert state["threshold"][0] == 2500


def test_gc_threshold_zero_leaves_pythons_setting(greenserve):
    state = collector(greenserve("--single-process", "--gc-threshold", "0", "gc_probe:app"))
    assert state["threshold"] == list(gc.get_threshold())


def test_an_application_that_sets_its_own_threshold_keeps_it(greenserve):
    state = collector(greenserve("--single-process", "gc_probe:app", env={"GC_PROBE_THRESHOLD": "1234"}))
    assert state["threshold"][0] == 1234
