"""Tier (b): ``--max-requests`` is counted on every request, and asks for a replacement exactly once.

The worker's server calls ``on_max_requests`` (in a worker under a master:
send the master a "retire" message) as its ``max_requests``-th request
begins; it keeps serving afterwards, until the master stops it.
"""

from __future__ import annotations

from .conftest import run_in_thread


def counting_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def test_the_replacement_is_asked_for_at_the_nth_request_and_only_then(harness):
    h = harness(counting_app)
    asked_at: list[int] = []
    h.server.max_requests = 5
    h.server.on_max_requests = lambda: asked_at.append(h.server.requests)

    def get(count: int) -> list[int]:
        conn = h.http()
        try:
            statuses = []
            for _ in range(count):
                conn.request("GET", "/")
                response = conn.getresponse()
                response.read()
                statuses.append(response.status)
            return statuses
        finally:
            conn.close()

    assert run_in_thread(lambda: get(4)) == [200] * 4
    assert asked_at == []
    assert run_in_thread(lambda: get(1)) == [200]  # the 5th request, on another connection
    assert asked_at == [5]
    # The worker serves on (until the master has a replacement ready), and asks only once.
    assert run_in_thread(lambda: get(10)) == [200] * 10
    assert asked_at == [5]
