"""What the operations tests share: masters with ``--metrics-bind``, scrapes parsed by prometheus_client."""

from __future__ import annotations

import http.client
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import wait_until
from tests.master.conftest import Master, master  # noqa: F401 - the masters' fixture, used here too

APPS = Path(__file__).resolve().parent / "apps"
METRICS_AT = r"Metrics at: (http://\S+)/metrics"


# -- scraping ---------------------------------------------------------------------------


class Scrape:
    """One parsed scrape: family types and every sample by (name, labels)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.types: dict[str, str] = {}
        self.samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.types[sample.name] = family.type
                self.samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels``."""
        wanted = set(labels.items())
        return sum(
            v for (n, sample_labels), v in self.samples.items() if n == name and wanted <= set(sample_labels)
        )

    def series(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        return {labels: v for (n, labels), v in self.samples.items() if n == name}

    def label_values(self, name: str, label: str) -> set[str]:
        return {dict(labels)[label] for labels in self.series(name)}

    def counters(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample that must never decrease: counters and histograms, summed over workers.

        ``greenserve_worker_requests_total`` is per running worker: its series
        ends with the worker (the aggregated ``greenserve_requests_total`` does not).
        """
        return {
            key: v
            for key, v in self.samples.items()
            if self.types[key[0]] in ("counter", "histogram") and key[0] != "greenserve_worker_requests_total"
        }


def metrics_url(server: Master) -> str:
    match = re.search(METRICS_AT, server.wait_for(METRICS_AT))
    assert match
    return match.group(1)


def fetch(url: str) -> tuple[int, str, str]:
    """``(status, content type, body)`` of one GET."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], error.read().decode()


def scrape(base: str) -> Scrape:
    status, content_type, text = fetch(base + "/metrics")
    assert status == 200, text
    assert content_type.startswith("text/plain; version=0.0.4")
    return Scrape(text)


def scrape_until(base: str, predicate, timeout: float = 10.0) -> Scrape:
    """Scrape until ``predicate(scrape)`` holds (gauges are published about once a second)."""
    last: list[Scrape] = []

    def check() -> bool:
        last[:] = [scrape(base)]
        return bool(predicate(last[0]))

    assert wait_until(check, timeout, 0.1), f"metrics never satisfied the condition:\n{last[0].text}"
    return last[0]


# -- clients ----------------------------------------------------------------------------


def request(address: tuple[str, int], method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One request on its own connection: ``(status, body)``."""
    conn = http.client.HTTPConnection(*address, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def start(
    make_master: Callable[..., Master], tmp_path: Path, *args: str, workers: int = 2
) -> tuple[Master, str, Path]:
    """A master with --metrics-bind on port 0 and an access log of ``METHOD STATUS BYTES`` lines."""
    access = tmp_path / "access.log"
    server = make_master(
        "-w",
        str(workers),
        "--metrics-bind",
        "127.0.0.1:0",
        "--access-logfile",
        str(access),
        "--access-logformat",
        "%(m)s %(s)s %(B)s",
        *args,
        "metrics_app:app",
        cwd=APPS,
        ready=rf"Ready: {workers} worker",
    )
    return server, metrics_url(server), access
