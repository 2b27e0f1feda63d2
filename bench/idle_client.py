"""Open N keep-alive connections, make one request on each, then keep them idle.

Driven by ``bench/run.py`` over stdin/stdout (one line each way), so the
harness can read the server's RSS while the connections are open:

    -> (starts)           <- {"event": "ready", "open": n, "failed": f, "seconds": s}
    -> "check\\n"          <- {"event": "check", "open": n, "closed_by_server": c}
    -> "close\\n"          <- {"event": "closed"}  (then exits)

Plain non-blocking sockets and ``selectors``; connections are made in batches
so the server's listen backlog is never the thing being measured.

With BATCH = N and a short TIMEOUT it doubles as a capacity check: can the
server answer N concurrent connections within TIMEOUT seconds?

Usage: python bench/idle_client.py HOST PORT N [BATCH [TIMEOUT]]
"""

import json
import selectors
import socket
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: keep-alive\r\n\r\n"


def say(**event) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def response_complete(buf: bytes) -> bool:
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return len(body) >= length


def open_batch(host: str, port: int, count: int, timeout: float = 30.0):
    """Connect ``count`` sockets, send one request on each, read each full response."""
    sel = selectors.DefaultSelector()
    state = {}
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.connect_ex((host, port))
        state[sock] = {"sent": False, "buf": b""}
        sel.register(sock, selectors.EVENT_WRITE)
    done, failed = [], []
    deadline = time.monotonic() + timeout
    while state and time.monotonic() < deadline:
        for key, events in sel.select(timeout=max(0.05, min(1.0, deadline - time.monotonic()))):
            sock = key.fileobj
            st = state[sock]
            try:
                if not st["sent"] and events & selectors.EVENT_WRITE:
                    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, "connect failed")
                    sock.sendall(REQUEST)
                    st["sent"] = True
                    sel.modify(sock, selectors.EVENT_READ)
                elif events & selectors.EVENT_READ:
                    data = sock.recv(65536)
                    if not data:
                        raise OSError("closed before the response")
                    st["buf"] += data
                    if response_complete(st["buf"]):
                        ok = st["buf"].startswith(b"HTTP/1.1 200")
                        sel.unregister(sock)
                        del state[sock]
                        (done if ok else failed).append(sock)
            except OSError:
                sel.unregister(sock)
                del state[sock]
                failed.append(sock)
    for sock in state:
        sel.unregister(sock)
        failed.append(sock)
    sel.close()
    for sock in failed:
        sock.close()
    return done, len(failed)


def still_open(socks) -> tuple[int, int]:
    """Connections the server has not closed (a non-blocking recv would block)."""
    alive = closed = 0
    for sock in socks:
        try:
            data = sock.recv(1)
        except BlockingIOError:
            alive += 1
            continue
        except OSError:
            closed += 1
            continue
        if data:
            alive += 1  # unexpected bytes, but still open
        else:
            closed += 1
    return alive, closed


def main() -> None:
    host, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    batch = int(sys.argv[4]) if len(sys.argv) > 4 else 500
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 30.0
    start = time.monotonic()
    socks, failed = [], 0
    while len(socks) + failed < total:
        done, bad = open_batch(host, port, min(batch, total - len(socks) - failed), timeout)
        socks.extend(done)
        failed += bad
    say(event="ready", open=len(socks), failed=failed, seconds=round(time.monotonic() - start, 2))
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "check":
            alive, closed = still_open(socks)
            say(event="check", open=alive, closed_by_server=closed)
        elif cmd == "close":
            break
    for sock in socks:
        sock.close()
    say(event="closed")


if __name__ == "__main__":
    main()
