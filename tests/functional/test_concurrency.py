"""One process serves many blocking requests at once (one greenlet per connection)."""

from __future__ import annotations

import http.client
import re
import subprocess
import threading
import time

import pytest
import requests

CLIENTS = 200


@pytest.mark.parametrize("mode", [[], ["--single-process"]], ids=["master", "single"])
def test_200_sleeping_requests_run_concurrently(greenserve, mode):
    server = greenserve(*mode, "--workers", "1", "probe:app")
    host, port = server.address
    barrier = threading.Barrier(CLIENTS)
    results: list = []
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        try:
            barrier.wait(10)
            conn.request("GET", "/sleep?s=0.5")
            response = conn.getresponse()
            outcome = (response.status, response.read())
        except Exception as exc:
            outcome = (0, repr(exc).encode())
        finally:
            conn.close()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    elapsed = time.monotonic() - started
    assert len(results) == CLIENTS
    failures = [outcome for outcome in results if outcome != (200, b"slept")]
    assert not failures, failures[:5]
    # Sequentially this would take 100 s.
    assert elapsed < 10, elapsed


def test_wrk_smoke(greenserve):
    """A short wrk run: every response is a 2xx and no socket errors."""
    server = greenserve("probe:app")
    try:
        result = subprocess.run(
            ["wrk", "-t", "2", "-c", "50", "-d", "1s", server.url + "/list"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except FileNotFoundError:
        pytest.skip("wrk is not installed")
    assert result.returncode == 0, result.stderr
    assert "Non-2xx" not in result.stdout, result.stdout
    assert "Socket errors" not in result.stdout, result.stdout
    completed = int(re.search(r"(\d+) requests in", result.stdout).group(1))
    assert completed > 100, result.stdout
    assert requests.get(server.url + "/list", timeout=5).content == b"abcdef"
