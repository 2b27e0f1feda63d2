"""Silent clients against a well-behaved one: can N connections that never send a byte starve it?

A benchmark probe, not a test: it prints latencies, it does not assert.

It starts the server (pinned to core 0 with ``taskset`` when available), opens
N connections that never send anything (``--silent``, 5,000 by default; they
are kept open, and reopened when the server closes them, unless
``--no-reconnect``), and meanwhile a normal client sends ``GET /`` every 0.2 s
for ``--seconds``, each on a new connection (``--keep-alive``: on one
connection, reopened when closed). It reports the well-behaved client's
latency percentiles and failures, and how many silent connections the
server closed.

Usage: python bench/silent_clients.py [--server greenserve|gunicorn|uvicorn] [--silent 5000]
                                      [--seconds 30] [--keep-alive] [--no-reconnect]
                                      [--settle 2] [--server-args '...']

e.g.   python bench/silent_clients.py --server greenserve --seconds 30
"""

from __future__ import annotations

import argparse
import errno
import http.client
import resource
import selectors
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

COMMANDS = {
    "greenserve": [sys.executable, "-m", "greenserve", "--no-access-log", "-b", "127.0.0.1:{port}"],
    "gunicorn": [sys.executable, "-m", "gunicorn", "-k", "gevent", "-b", "127.0.0.1:{port}"],
    "uvicorn": [
        *(sys.executable, "-m", "uvicorn", "--port", "{port}", "--no-access-log", "--interface", "wsgi"),
    ],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(name: str, port: int, extra: list[str]) -> subprocess.Popen:
    command = [part.format(port=port) for part in COMMANDS[name]] + extra + ["bench.apps:hello"]
    if shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{name} did not start")


class Silent(threading.Thread):
    """N connections that never send a byte; reopened when the server closes them."""

    def __init__(self, port: int, count: int, reconnect: bool) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.count = count
        self.reconnect = reconnect
        self.closed_by_server = 0
        self.open = 0
        self.stop = threading.Event()

    def _connect(self, sel: selectors.BaseSelector) -> None:
        sock = socket.socket()
        sock.setblocking(False)
        code = sock.connect_ex(("127.0.0.1", self.port))
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            return
        sel.register(sock, selectors.EVENT_READ)
        self.open += 1

    def run(self) -> None:
        sel = selectors.DefaultSelector()
        for index in range(self.count):
            self._connect(sel)
            if index % 500 == 499:
                time.sleep(0.05)  # let the backlog drain a little, as real clients arrive
        while not self.stop.is_set():
            for key, _ in sel.select(0.1):
                sock = key.fileobj
                try:
                    data = sock.recv(4096)  # type: ignore[union-attr]
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(sock)
                    sock.close()  # type: ignore[union-attr]
                    self.open -= 1
                    self.closed_by_server += 1
                    if self.reconnect:
                        self._connect(sel)
        for key in list(sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]


def probe(port: int, seconds: float, keep_alive: bool) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    failures: list[str] = []
    conn: http.client.HTTPConnection | None = None
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        try:
            if conn is None or not keep_alive:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                failures.append(f"status {response.status}")
            latencies.append(time.monotonic() - started)
        except (OSError, http.client.HTTPException) as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
            conn = None
        if not keep_alive and conn is not None:
            conn.close()
            conn = None
        time.sleep(max(0.0, 0.2 - (time.monotonic() - started)))
    return latencies, failures


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=sorted(COMMANDS), default="greenserve")
    parser.add_argument("--silent", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--keep-alive", action="store_true")
    parser.add_argument("--no-reconnect", action="store_true")
    parser.add_argument("--server-args", default="")
    parser.add_argument(
        "--settle",
        type=float,
        default=2.0,
        help="seconds between opening the silent connections and the first probe (0: probe during the flood)",
    )
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.silent + 1024)), hard))
    port = free_port()
    proc = start_server(args.server, port, shlex.split(args.server_args))
    try:
        silent = Silent(port, args.silent, not args.no_reconnect)
        silent.start()
        time.sleep(args.settle)
        latencies, failures = probe(port, args.seconds, args.keep_alive)
        silent.stop.set()
        silent.join(10)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(f"server: {args.server} {args.server_args}".rstrip())
    print(f"silent connections: {args.silent} (reconnect: {not args.no_reconnect})")
    print(f"closed by the server: {silent.closed_by_server}")
    mode = "one keep-alive connection" if args.keep_alive else "a new connection each"
    print(f"probe: GET / every 0.2 s for {args.seconds:g} s, {mode}, from {args.settle:g} s after the flood")
    print(f"requests: {len(latencies)} ok, {len(failures)} failed")
    if latencies:
        ms = [value * 1000 for value in latencies]
        print(
            f"latency ms: p50 {statistics.median(ms):.1f}  p90 {percentile(ms, 0.9):.1f}  "
            f"p99 {percentile(ms, 0.99):.1f}  max {max(ms):.1f}"
        )
    for failure in sorted(set(failures))[:5]:
        print(f"  failure: {failure} (x{failures.count(failure)})")


if __name__ == "__main__":
    main()
