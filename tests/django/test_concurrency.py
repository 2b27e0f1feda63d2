"""Concurrency of a Django project under ``manage.py greenserve --workers 1``.

gevent patches the standard library in the worker before Django is imported,
so a view that blocks in ``time.sleep`` or on a database socket yields to the
other requests' greenlets instead of holding up the worker.
"""

from __future__ import annotations

from tests.django.conftest import concurrent_get, describe

REQUESTS = 100
SLEEP = 0.5  # seconds, in the ``/sleep/`` view


def test_database_view_under_100_concurrent_requests(manage_greenserve):
    """Each request creates a row and reads it back (SQLite, one connection per greenlet)."""
    server = manage_greenserve("--workers", "1", "--noreload", "--no-access-log")
    responses, elapsed = concurrent_get(server.url + "/db/", REQUESTS)
    assert all(r.status_code == 200 for r in responses), describe(responses)
    bodies = [r.json() for r in responses]
    assert len({body["group"] for body in bodies}) == REQUESTS  # every row its own
    assert all(body["users"] == 1 for body in bodies)  # the superuser
    print(f"{REQUESTS} concurrent create-and-read requests on SQLite, one worker: {elapsed:.2f} s")
    assert elapsed < 30, elapsed


def test_sleeping_view_runs_concurrently_on_one_worker(manage_greenserve):
    """100 times ``time.sleep(0.5)`` would take 50 s in series; patched, about 0.5 s."""
    server = manage_greenserve("--workers", "1", "--noreload", "--no-access-log")
    assert "Ready: 1 worker(s)" in server.wait_for("Ready:")
    responses, elapsed = concurrent_get(server.url + "/sleep/", REQUESTS)
    assert all(r.status_code == 200 and r.text == "slept" for r in responses), describe(responses)
    print(f"{REQUESTS} concurrent time.sleep({SLEEP}) on one worker: {elapsed:.2f} s")
    assert elapsed >= SLEEP
    # Well under the 50 s of serial execution; generous for loaded CI machines.
    assert elapsed < 10, f"{REQUESTS} concurrent {SLEEP} s sleeps took {elapsed:.1f} s"
