"""Fire N concurrent slow requests at a running server and time them.

Standard library only. Opens every connection at once on raw non-blocking
sockets (one thread, ``selectors``), sends one request on each, and waits
for all the answers::

    python examples/flask_app/loadtest.py                       # 500 x /sleep?seconds=1
    python examples/flask_app/loadtest.py -n 200 --path /slow   # 200 x an upstream call of 1 s

With one greenserve process, 500 requests that each sleep 1 s should all be
answered in a little over 1 s. A server that handles one request at a time
per thread or process would need N / (threads x processes) seconds.

Only ever point this at a server you run yourself (the default is loopback).
"""

from __future__ import annotations

import argparse
import errno
import selectors
import socket
import sys
import time
from urllib.parse import urlsplit


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--requests", type=int, default=500, help="concurrent requests (500)")
    parser.add_argument(
        "--url", default="http://127.0.0.1:8000", help="server base URL (http://127.0.0.1:8000)"
    )
    parser.add_argument(
        "--path", default="/sleep?seconds=1", help="path to request (/sleep?seconds=1; try /slow)"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="give up after this many seconds (30)")
    return parser.parse_args(argv)


class Exchange:
    """One connection: connect, send one request, read the response until close."""

    __slots__ = ("connected", "done", "error", "finished", "out", "received", "sock", "started")

    def __init__(self, sock: socket.socket, request: bytes) -> None:
        self.sock = sock
        self.out = request
        self.received = bytearray()
        self.started = time.perf_counter()
        self.finished = 0.0
        self.connected = False
        self.done = False
        self.error = ""

    @property
    def status(self) -> str:
        if self.error:
            return self.error
        line = bytes(self.received.split(b"\r\n", 1)[0])
        parts = line.split(b" ", 2)
        return parts[1].decode("latin-1") if len(parts) > 1 else "no response"


def run(n: int, base_url: str, path: str, timeout: float) -> int:
    url = urlsplit(base_url)
    if url.scheme != "http" or not url.hostname:
        sys.exit("--url must look like http://HOST:PORT")
    host, port = url.hostname, url.port or 80
    address = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0][4]
    authority = url.netloc
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: greenserve-loadtest\r\n"
        "Connection: close\r\n\r\n"
    ).encode("latin-1")

    selector = selectors.DefaultSelector()
    exchanges = []
    started = time.perf_counter()
    for _ in range(n):
        sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        exchange = Exchange(sock, request)
        code = sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            exchange.error = f"connect: {errno.errorcode.get(code, code)}"
            exchange.done = True
            sock.close()
        else:
            selector.register(sock, selectors.EVENT_WRITE, exchange)
        exchanges.append(exchange)

    pending = sum(1 for e in exchanges if not e.done)
    deadline = started + timeout
    while pending and time.perf_counter() < deadline:
        for key, _events in selector.select(timeout=0.5):
            exchange = key.data
            sock = exchange.sock
            try:
                if exchange.out:
                    sent = sock.send(exchange.out)
                    exchange.out = exchange.out[sent:]
                    if not exchange.out:
                        selector.modify(sock, selectors.EVENT_READ, exchange)
                    continue
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                exchange.error = f"error: {exc.strerror or exc}"
                data = b""
            if data:
                exchange.received += data
                continue
            exchange.finished = time.perf_counter()
            exchange.done = True
            pending -= 1
            selector.unregister(sock)
            sock.close()
    wall = time.perf_counter() - started
    for exchange in exchanges:
        if not exchange.done:
            exchange.error = "timed out"
            exchange.sock.close()

    statuses: dict[str, int] = {}
    for exchange in exchanges:
        statuses[exchange.status] = statuses.get(exchange.status, 0) + 1
    latencies = sorted(e.finished - e.started for e in exchanges if e.finished and e.status == "200")
    ok = statuses.get("200", 0)
    print(f"{n} concurrent requests to {base_url.rstrip('/')}{path}")
    print("statuses: " + ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items())))
    if latencies:
        print(
            f"latency: min {latencies[0]:.3f} s, median {latencies[len(latencies) // 2]:.3f} s, "
            f"max {latencies[-1]:.3f} s"
        )
    print(f"total wall time: {wall:.3f} s")
    return 0 if ok == n else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run(args.requests, args.url, args.path, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
