"""Metrics: what every worker counts, in memory its master reads, and the Prometheus text format.

Each worker gets a small block of shared memory from its master before the
fork (:class:`WorkerMetrics`) and writes its counters there as it serves:
a few integer additions per request, no lock, no system call, and nothing
at all when metrics are off. The master reads every block when scraped, adds
what workers that have exited had counted (their blocks outlive them in the
master until it has taken their final values), and renders the Prometheus
text exposition format: counters never go backwards, whatever workers come
and go, and there is no multiprocess directory to manage.

Standard library only: the master imports this module.
"""

from __future__ import annotations

import mmap
from array import array
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

# -- layout of one worker's block: 64-bit signed integers ----------------------------------

#: Methods counted by name; any other goes to "other".
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other")
_METHOD_INDEX = {method: index for index, method in enumerate(METHODS[:-1])}
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
#: Request duration histogram buckets, seconds (Prometheus' default buckets, plus 1 ms).
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Event-loop lag histogram buckets, seconds: how late a periodic hub callback ran.
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

EVICTION_KINDS = ("silent", "idle")
#: Why the master replaced (or removed) a worker; every one is rendered, 0 until it happens.
RESTART_CAUSES = ("crash", "exit", "max_requests", "reload", "scale_down", "timeout")
TIMEOUT_KINDS = ("header", "client", "keep_alive", "request")

_REQUESTS = 0  # METHODS x STATUS_CLASSES counters
# A histogram's cells: one count per bucket (+Inf last), then the sum in microseconds. Its _count
# is the buckets' total, not a cell of its own: one shared-memory addition less per request.
_DURATION = _REQUESTS + len(METHODS) * len(STATUS_CLASSES)
_DURATION_SUM = _DURATION + len(DURATION_BUCKETS) + 1
_BYTES_IN = _DURATION_SUM + 1
_BYTES_OUT = _BYTES_IN + 1
#: A method's first requests cell (one per status class follow it), and a status's class.
_METHOD_CELL = {method: _REQUESTS + index * len(STATUS_CLASSES) for method, index in _METHOD_INDEX.items()}
_OTHER_METHOD_CELL = _REQUESTS + (len(METHODS) - 1) * len(STATUS_CLASSES)
_STATUS_CLASS = {code: code // 100 - 1 for code in range(100, 600)}  # anything else counts as 5xx
_EVICTIONS = _BYTES_OUT + 1
_TIMEOUTS = _EVICTIONS + len(EVICTION_KINDS)
_WEBSOCKETS_TOTAL = _TIMEOUTS + len(TIMEOUT_KINDS)
_BLOCKED = _WEBSOCKETS_TOTAL + 1  # event loop blocked past --block-threshold (the blocker report)
_LAG = _BLOCKED + 1  # a histogram, as _DURATION
_LAG_SUM = _LAG + len(LAG_BUCKETS) + 1
_COUNTERS_END = _LAG_SUM + 1
# Gauges, refreshed by the worker about once a second: not summed into the retired totals.
_CONNECTIONS = _COUNTERS_END
_PARKED = _CONNECTIONS + 1
_BUSY = _PARKED + 1
_WEBSOCKETS = _BUSY + 1
_LIMIT = _WEBSOCKETS + 1
CELLS = _LIMIT + 1

BLOCK_SIZE = mmap.PAGESIZE


def _cells(buffer: Any) -> memoryview:
    return memoryview(buffer).cast("q")


class WorkerMetrics:
    """One worker's block. The worker adds to it; the master reads it (and frees it after reaping).

    Per-request counters go to a list in the worker first, copied into the block by
    :meth:`publish` (every 0.25 s, and when the worker stops): an addition to a list
    item costs a tenth of one to the shared memoryview (bench/metrics.py --instructions:
    metrics on cost 8,900 instructions per hello request written straight to the block).
    A scrape may be 0.25 s behind, and a worker killed with SIGKILL loses its last 0.25 s.
    The rarer events (timeouts, evictions, WebSockets, blocked loops, lag) are written
    to the block at once.
    """

    __slots__ = ("_map", "_requests", "_seconds", "cells")

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, BLOCK_SIZE)  # anonymous and shared: inherited across fork
        #: The block's integers (index with the module's offsets).
        self.cells = _cells(self._map)
        #: The worker's per-request counters (the block's first cells), until published.
        self._requests = [0] * _EVICTIONS
        #: The requests' total duration in seconds, until published (a float: no int() per request).
        self._seconds = 0.0

    # -- worker side (the hot path: a few additions per request) -------------------------

    def request(self, method: str, status: int, seconds: float, received: int, sent: int) -> None:
        """One request answered: counted by method and status class, timed, its body bytes added."""
        cells = self._requests
        # Two dictionary lookups rather than arithmetic and a range check on the status.
        cells[_METHOD_CELL.get(method, _OTHER_METHOD_CELL) + _STATUS_CLASS.get(status, 4)] += 1
        cells[_DURATION + bisect_left(DURATION_BUCKETS, seconds)] += 1
        self._seconds += seconds
        if received:
            cells[_BYTES_IN] += received
        cells[_BYTES_OUT] += sent

    def publish(self) -> None:
        """Copy the per-request counters into the shared block (the worker's, never the master's)."""
        requests = self._requests
        requests[_DURATION_SUM] = int(self._seconds * 1_000_000)
        self.cells[:_EVICTIONS] = array("q", requests)

    def lag(self, seconds: float) -> None:
        cells = self.cells
        cells[_LAG + bisect_left(LAG_BUCKETS, seconds)] += 1
        cells[_LAG_SUM] += int(seconds * 1_000_000)

    def evicted(self, kind: str, count: int = 1) -> None:
        self.cells[_EVICTIONS + EVICTION_KINDS.index(kind)] += count

    def timed_out(self, kind: str) -> None:
        self.cells[_TIMEOUTS + TIMEOUT_KINDS.index(kind)] += 1

    def websocket_opened(self) -> None:
        self.cells[_WEBSOCKETS_TOTAL] += 1

    def blocked(self) -> None:
        self.cells[_BLOCKED] += 1

    def gauges(self, connections: int, parked: int, busy: int, websockets: int, limit: int) -> None:
        cells = self.cells
        cells[_CONNECTIONS] = connections
        cells[_PARKED] = parked
        cells[_BUSY] = busy
        cells[_WEBSOCKETS] = websockets
        cells[_LIMIT] = limit

    # -- master side -----------------------------------------------------------------------

    def snapshot(self) -> list[int]:
        return self.cells.tolist()

    def close(self) -> None:
        self.cells.release()
        self._map.close()


class Totals:
    """The counters of workers that have exited, kept by the master so totals never go backwards."""

    def __init__(self) -> None:
        self.cells = [0] * _COUNTERS_END

    def add(self, snapshot: list[int]) -> None:
        for index in range(_COUNTERS_END):
            self.cells[index] += snapshot[index]


# -- the Prometheus text exposition format (version 0.0.4) ---------------------------------

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    body = ",".join(f'{name}="{_escape(value)}"' for name, value in pairs)
    return "{" + body + "}" if body else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


class Exposition:
    """Builds one scrape's text, metric family by family."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self._lines.append(f"# HELP {name} {help_text}")
        self._lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, labels: Iterable[tuple[str, str]] = ()) -> None:
        self._lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def histogram(
        self,
        name: str,
        buckets: tuple[float, ...],
        cells: list[int],
        offset: int,
        labels: tuple[tuple[str, str], ...] = (),
    ) -> None:
        running = 0
        for index, bound in enumerate(buckets):
            running += cells[offset + index]
            self.sample(f"{name}_bucket", running, (*labels, ("le", repr(float(bound)))))
        running += cells[offset + len(buckets)]
        self.sample(f"{name}_bucket", running, (*labels, ("le", "+Inf")))
        self.sample(f"{name}_count", running, labels)  # every observation is in one bucket
        self.sample(f"{name}_sum", cells[offset + len(buckets) + 1] / 1_000_000, labels)

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


def render(
    workers: dict[str, list[int]],
    retired: Totals,
    server: dict[str, Any],
) -> str:
    """The whole scrape: ``workers`` maps a worker's label (its age) to its snapshot.

    ``server`` holds the master's own figures: ``workers`` (wanted),
    ``restarts`` ({cause: count}), ``heartbeat_kills``.
    """
    total = list(retired.cells)
    for snapshot in workers.values():
        for index in range(_COUNTERS_END):
            total[index] += snapshot[index]
    out = Exposition()
    out.family("greenserve_requests_total", "counter", "Requests answered, by method and status class.")
    for m, method in enumerate(METHODS):
        for c, status in enumerate(STATUS_CLASSES):
            value = total[_REQUESTS + m * 5 + c]
            if value:
                out.sample("greenserve_requests_total", value, (("method", method), ("status", status)))
    out.family(
        "greenserve_worker_requests_total",
        "counter",
        "Requests answered by each running worker (its series ends when the worker exits).",
    )
    for worker, snapshot in sorted(workers.items(), key=lambda item: int(item[0])):
        for m, method in enumerate(METHODS):
            for c, status in enumerate(STATUS_CLASSES):
                value = snapshot[_REQUESTS + m * 5 + c]
                if value:
                    labels = (("worker", worker), ("method", method), ("status", status))
                    out.sample("greenserve_worker_requests_total", value, labels)
    out.family("greenserve_request_duration_seconds", "histogram", "Time from request head to response end.")
    out.histogram("greenserve_request_duration_seconds", DURATION_BUCKETS, total, _DURATION)
    out.family("greenserve_request_body_bytes_total", "counter", "Request body bytes received.")
    out.sample("greenserve_request_body_bytes_total", total[_BYTES_IN])
    out.family("greenserve_response_body_bytes_total", "counter", "Response body bytes sent.")
    out.sample("greenserve_response_body_bytes_total", total[_BYTES_OUT])
    out.family(
        "greenserve_evictions_total",
        "counter",
        "Connections closed to make room in a full pool: silent (no request yet) or idle keep-alive.",
    )
    for index, kind in enumerate(EVICTION_KINDS):
        out.sample("greenserve_evictions_total", total[_EVICTIONS + index], (("kind", kind),))
    out.family(
        "greenserve_timeouts_total", "counter", "Waits on a client, or requests, that ran out of time."
    )
    for index, kind in enumerate(TIMEOUT_KINDS):
        out.sample("greenserve_timeouts_total", total[_TIMEOUTS + index], (("kind", kind),))
    out.sample("greenserve_timeouts_total", server.get("heartbeat_kills", 0), (("kind", "heartbeat"),))
    out.family("greenserve_websocket_connections_total", "counter", "WebSocket connections accepted.")
    out.sample("greenserve_websocket_connections_total", total[_WEBSOCKETS_TOTAL])
    out.family(
        "greenserve_event_loop_blocked_total",
        "counter",
        "Times a worker's event loop was blocked longer than --block-threshold (see the blocker report).",
    )
    out.sample("greenserve_event_loop_blocked_total", total[_BLOCKED])
    out.family(
        "greenserve_event_loop_lag_seconds",
        "histogram",
        "How late a periodic callback on a worker's event loop ran: time the loop spent not polling.",
    )
    out.histogram("greenserve_event_loop_lag_seconds", LAG_BUCKETS, total, _LAG)
    gauges = (
        ("greenserve_connections", _CONNECTIONS, "Open client connections, per worker."),
        ("greenserve_connections_parked", _PARKED, "Connections waiting for a request without a greenlet."),
        ("greenserve_connections_busy", _BUSY, "Connections with a request in progress (busy greenlets)."),
        ("greenserve_websockets", _WEBSOCKETS, "Open WebSocket connections, per worker."),
        ("greenserve_connections_limit", _LIMIT, "--worker-connections: the pool's size, per worker."),
    )
    for name, index, help_text in gauges:
        out.family(name, "gauge", help_text)
        for worker, snapshot in sorted(workers.items(), key=lambda item: int(item[0])):
            out.sample(name, snapshot[index], (("worker", worker),))
    out.family("greenserve_workers", "gauge", "Worker processes running, and how many are wanted.")
    out.sample("greenserve_workers", len(workers), (("state", "running"),))
    out.sample("greenserve_workers", server.get("workers", len(workers)), (("state", "wanted"),))
    out.family("greenserve_worker_restarts_total", "counter", "Workers replaced, by cause.")
    # Series that exist from the start: an alert on increase() sees the first crash
    # (a series that appears at 1 has no increase to show).
    restarts = dict.fromkeys(RESTART_CAUSES, 0) | server.get("restarts", {})
    for cause, count in sorted(restarts.items()):
        out.sample("greenserve_worker_restarts_total", count, (("cause", cause),))
    return out.text()
