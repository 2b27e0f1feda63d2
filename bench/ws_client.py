"""WebSocket ping-pong load client for bench/websocket.py: one process, raw sockets, epoll.

Opens N WebSocket connections (the HTTP upgrade by hand, at most
``--open-concurrency`` handshakes in flight), then every connection sends one
small masked text frame, waits for its echo, and sends again, for
``--duration`` seconds. Prints one JSON line: round trips completed in the
window, messages/s, p50/p99 round-trip latency, connections that failed to
open (and why), connections the server dropped, and the client's own CPU use
(near 100% would mean the client, not the server, is the bottleneck).

Why no WebSocket library: the frame a client sends never changes, so it is
built (and masked) once, and an echo is recognised by comparing the bytes
received with the one expected frame; the per-message cost is an epoll
event, one ``recv``, one ``send`` and a comparison. Frames that do not match
(split reads, a ping, a close) go through a small general parser. The client
does not offer per-message deflate, so no server compresses.

Usage: python bench/ws_client.py PORT CONNECTIONS DURATION [--size 32] [--path /]
"""

from __future__ import annotations

import argparse
import base64
import errno
import json
import os
import resource
import select
import socket
import struct
import time

MASK = b"\x37\xfa\x21\x3d"


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """A final client frame (RFC 6455 5.2), masked with a fixed key (servers do not judge the key)."""
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    masked = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return head + MASK + masked


def server_frame(opcode: int, payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        return struct.pack("!BB", 0x80 | opcode, size) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", 0x80 | opcode, 126, size) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, size) + payload


def handshake_request(port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


class Conn:
    __slots__ = ("buf", "count", "sent_at", "sock", "started")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.sent_at = 0.0
        self.started = 0.0
        self.count = 0


def open_connections(port: int, count: int, path: str, concurrency: int, timeout: float):
    """Open ``count`` WebSockets; returns (open Conns, failures by reason, seconds taken)."""
    ep = select.epoll()
    pending: dict[int, Conn] = {}
    opened: list[Conn] = []
    failures: dict[str, int] = {}
    started = time.monotonic()
    todo = count

    def fail(fd: int, reason: str) -> None:
        conn = pending.pop(fd)
        ep.unregister(fd)
        conn.sock.close()
        failures[reason] = failures.get(reason, 0) + 1

    while todo or pending:
        while todo and len(pending) < concurrency:
            todo -= 1
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = sock.connect_ex(("127.0.0.1", port))
            if err not in (0, errno.EINPROGRESS):
                sock.close()
                reason = f"connect: {errno.errorcode.get(err, err)}"
                failures[reason] = failures.get(reason, 0) + 1
                continue
            conn = Conn(sock)
            conn.started = time.monotonic()
            pending[sock.fileno()] = conn
            ep.register(sock.fileno(), select.EPOLLOUT)
        now = time.monotonic()
        for fd in [fd for fd, c in pending.items() if now - c.started > timeout]:
            fail(fd, "handshake timeout")
        for fd, ev in ep.poll(0.2):
            conn = pending.get(fd)
            if conn is None:
                continue
            if ev & select.EPOLLOUT:
                err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    fail(fd, f"connect: {errno.errorcode.get(err, err)}")
                    continue
                conn.sock.send(handshake_request(port, path))
                ep.modify(fd, select.EPOLLIN)
                continue
            try:
                data = conn.sock.recv(4096)
            except OSError as exc:
                fail(fd, f"handshake: {exc.strerror}")
                continue
            if not data:
                fail(fd, "closed during handshake")
                continue
            conn.buf += data
            head, sep, rest = conn.buf.partition(b"\r\n\r\n")
            if not sep:
                continue
            if not head.startswith(b"HTTP/1.1 101"):
                status = head.split(b"\r\n", 1)[0].decode("latin-1")[:40]
                fail(fd, f"answer {status}")
                continue
            conn.buf = rest
            del pending[fd]
            ep.unregister(fd)
            opened.append(conn)
    ep.close()
    return opened, failures, time.monotonic() - started


def ping_pong(conns: list[Conn], duration: float, size: int) -> dict:
    """Each connection: send, wait for the echo, send again, for ``duration`` s."""
    payload = (b"0123456789abcdef" * (size // 16 + 1))[:size]
    frame = masked_frame(0x1, payload)
    expected = server_frame(0x1, payload)
    pong_payload = b""
    by_fd = {c.sock.fileno(): c for c in conns}
    ep = select.epoll(len(conns) + 1)
    latencies: list[float] = []
    record = latencies.append
    dropped = 0
    mismatched = 0
    clock = time.perf_counter
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = clock()
    end = t0 + duration
    for fd, conn in by_fd.items():
        ep.register(fd, select.EPOLLIN)
        conn.sent_at = clock()
        conn.sock.send(frame)
    poll = ep.poll
    outstanding = len(by_fd)
    now = t0
    while outstanding and now < end + 2.0:
        for fd, _ev in poll(0.5):
            conn = by_fd.get(fd)
            if conn is None:
                continue
            try:
                data = conn.sock.recv(65536)
            except OSError:
                data = b""
            now = clock()
            if not data:
                dropped += 1
                outstanding -= 1
                ep.unregister(fd)
                del by_fd[fd]
                continue
            if data == expected and not conn.buf:
                done = 1
            else:
                done, closed, pong_payload, bad = parse(conn, data, payload)
                mismatched += bad
                if pong_payload is not None:
                    conn.sock.send(masked_frame(0xA, pong_payload))
                if closed:
                    dropped += 1
                    outstanding -= 1
                    ep.unregister(fd)
                    del by_fd[fd]
                    continue
                if not done:
                    continue
            if now <= end:
                record(now - conn.sent_at)
                conn.count += 1
                conn.sent_at = now
                conn.sock.send(frame)
            else:
                outstanding -= 1
        now = clock()  # the for loop never breaks: the clock after each batch of events
    window = min(clock(), end) - t0
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    ep.close()
    latencies.sort()

    def pct(q: float) -> float | None:
        return 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else None

    counts = [c.count for c in conns]
    return {
        "messages": len(latencies),
        "seconds": window,
        "rate": len(latencies) / window if window > 0 else 0.0,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": 1000 * latencies[-1] if latencies else None,
        "dropped": dropped,
        "mismatched": mismatched,
        "slowest_connection": min(counts) if counts else 0,
        "client_cpu": 100 * cpu / max(clock() - t0, 1e-6),
    }


def parse(conn: Conn, data: bytes, payload: bytes) -> tuple[int, bool, bytes | None, int]:
    """Frames that are not exactly one expected echo: (echoes completed, closed, ping payload, bad)."""
    buf = conn.buf + data
    done, closed, ping, bad = 0, False, None, 0
    while len(buf) >= 2:
        b0, b1 = buf[0], buf[1]
        size, pos = b1 & 0x7F, 2
        if size == 126:
            if len(buf) < 4:
                break
            size, pos = struct.unpack_from("!H", buf, 2)[0], 4
        elif size == 127:
            if len(buf) < 10:
                break
            size, pos = struct.unpack_from("!Q", buf, 2)[0], 10
        if len(buf) < pos + size:
            break
        body, buf = buf[pos : pos + size], buf[pos + size :]
        opcode = b0 & 0x0F
        if opcode in (0x1, 0x2):
            done += 1
            bad += body != payload
        elif opcode == 0x8:
            closed = True
        elif opcode == 0x9:
            ping = body
    conn.buf = buf
    return done, closed, ping, bad


def close_all(conns: list[Conn], wait: float = 2.0) -> int:
    """A close frame (1000) on every connection, then wait for the server to close each one.

    Returns how many connections the server had not closed after ``wait`` seconds (a
    server that answers the close handshake closes the TCP connection, RFC 6455 7.1.1).
    """
    close = masked_frame(0x8, struct.pack("!H", 1000))
    live = {}
    for conn in conns:
        try:
            conn.sock.send(close)
            live[conn.sock.fileno()] = conn
        except OSError:
            conn.sock.close()
    ep = select.epoll(len(live) + 1)
    for fd in live:
        ep.register(fd, select.EPOLLIN)
    deadline = time.monotonic() + wait
    while live and time.monotonic() < deadline:
        for fd, _ev in ep.poll(0.2):
            conn = live.get(fd)
            if conn is None:
                continue
            try:
                data = conn.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                ep.unregister(fd)
                conn.sock.close()
                del live[fd]
    ep.close()
    for conn in live.values():
        conn.sock.close()
    return len(live)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("port", type=int)
    p.add_argument("connections", type=int)
    p.add_argument("duration", type=float)
    p.add_argument("--size", type=int, default=32, help="message size in bytes (default 32)")
    p.add_argument("--path", default="/")
    p.add_argument("--open-concurrency", type=int, default=200, help="handshakes in flight (default 200)")
    p.add_argument("--open-timeout", type=float, default=10.0, help="per handshake, seconds (default 10)")
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.connections + 50:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.connections + 1000), hard))
    conns, failures, open_seconds = open_connections(
        args.port, args.connections, args.path, args.open_concurrency, args.open_timeout
    )
    result: dict = {"opened": len(conns), "failed_to_open": sum(failures.values()), "failures": failures}
    result["open_seconds"] = open_seconds
    if conns:
        result.update(ping_pong(conns, args.duration, args.size))
    result["not_closed_by_server"] = close_all(conns)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
