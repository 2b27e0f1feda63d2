"""Many requests at once in one worker: ASGI awaits, a mixed WSGI + ASGI worker,
and many WebSockets."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time

import httpx
import pytest
import requests
from websockets.sync.client import connect

from tests.asgi.conftest import thread_count, worker_pids, ws_url
from tests.conftest import read_until_close, request_bytes


async def fire(url: str, count: int) -> tuple[float, list]:
    """``count`` concurrent GETs, one connection each; ``(elapsed, [(status, body)])``.

    A bare asyncio client: httpx costs ~4 ms of client CPU per request, which
    for 500 requests would measure the client instead of the server.
    """
    parsed = httpx.URL(url)
    target = parsed.raw_path.decode()
    host, port = parsed.host, parsed.port

    async def one() -> tuple[int, str]:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = await reader.read()
        finally:
            writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), body.decode()

    async def guarded() -> tuple[int, str]:
        try:
            return await asyncio.wait_for(one(), 30)
        except Exception as exc:
            return 0, repr(exc)

    started = time.monotonic()
    results = await asyncio.gather(*(guarded() for _ in range(count)))
    return time.monotonic() - started, list(results)


@pytest.fixture(scope="module")
def fastapi_one_worker(module_serve):
    return module_serve("-w", "1", "fastapi_app:app")


def test_500_concurrent_awaiting_requests_in_one_worker(fastapi_one_worker):
    server = fastapi_one_worker
    assert requests.get(server.url + "/sleep?s=0", timeout=5).status_code == 200
    elapsed, results = asyncio.run(fire(server.url + "/sleep?s=0.5", 500))
    failures = [r for r in results if r != (200, '{"slept":0.5}')]
    assert not failures, failures[:5]
    # Sequentially: 250 s. Concurrently on one loop: about 0.5-1 s.
    assert elapsed < 3, f"500 x asyncio.sleep(0.5) took {elapsed:.2f} s"
    assert len(worker_pids(server)) == 1


def test_mixed_flask_and_fastapi_in_one_worker(serve):
    server = serve("-w", "1", "mixed_app:app")
    (pid,) = worker_pids(server)

    async def both() -> tuple[float, list, list]:
        started = time.monotonic()
        (_, flask), (_, api) = await asyncio.gather(
            fire(server.url + "/flask/sleep?s=0.5", 100), fire(server.url + "/api/sleep?s=0.5", 100)
        )
        return time.monotonic() - started, flask, api

    elapsed, flask, api = asyncio.run(both())
    assert [r for r in flask if r != (200, "flask slept")] == []
    assert [r for r in api if r != (200, '{"api":"slept"}')] == []
    assert elapsed < 3, f"100 blocking Flask + 100 async FastAPI requests took {elapsed:.2f} s"
    # Both halves see their mount point.
    assert requests.get(server.url + "/flask/where", timeout=5).json() == {
        "script_name": "/flask",
        "path_info": "/where",
    }
    assert requests.post(server.url + "/api/echo", json={"a": 1}, timeout=5).json() == {"echo": {"a": 1}}
    assert requests.get(server.url + "/nothing", timeout=5).status_code == 404
    assert worker_pids(server) == [pid]


def test_mounted_bridge_starts_one_loop_thread(serve):
    """``ASGIBridge(app)`` mounted in a WSGI app starts the worker's loop thread on
    its first request; 50 first requests arriving together must share one.

    (The blocker report's watching thread is off, to count only these.)"""
    server = serve("-w", "1", "--block-threshold", "0", "mixed_app:app")
    (pid,) = worker_pids(server)
    assert thread_count(pid) == 1
    # Queue 50 requests while the worker is stopped, so they all arrive at once.
    os.kill(pid, signal.SIGSTOP)
    try:
        sockets = [socket.create_connection(server.address, timeout=10) for _ in range(50)]
        for sock in sockets:
            sock.sendall(request_bytes("GET", "/api/sleep?s=0", {"Connection": "close"}))
    finally:
        os.kill(pid, signal.SIGCONT)
    for sock in sockets:
        with sock:
            data, closed = read_until_close(sock, timeout=10)
            assert closed and data.startswith(b"HTTP/1.1 200"), data[:200]
    assert thread_count(pid) == 2, f"{thread_count(pid)} OS threads in the worker (main + loop threads)"


def test_100_concurrent_websockets_in_one_worker(serve):
    server = serve("-w", "1", "ws_app:app")
    clients = 100
    barrier = threading.Barrier(clients, timeout=20)
    results: list = []
    lock = threading.Lock()

    def client(n: int) -> None:
        try:
            with connect(ws_url(server, "/echo"), open_timeout=20, close_timeout=5, proxy=None) as ws:
                barrier.wait()  # all 100 are open at the same time
                for i in range(5):
                    ws.send(f"{n}:{i}")
                echoes = [ws.recv(timeout=10) for _ in range(5)]
                outcome = echoes == [f"{n}:{i}" for i in range(5)]
        except Exception as exc:
            outcome = repr(exc)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    elapsed = time.monotonic() - started
    assert len(results) == clients
    assert [r for r in results if r is not True] == []
    assert elapsed < 10, elapsed
    assert len(worker_pids(server)) == 1


def test_concurrent_streaming_responses(fastapi_one_worker):
    """50 SSE streams at once, each arriving over ~1 s, in one worker."""
    server = fastapi_one_worker
    count = 50

    async def stream(client: httpx.AsyncClient) -> list[str]:
        async with client.stream("GET", server.url + "/sse?n=5&delay=0.2") as response:
            return [line async for line in response.aiter_lines() if line]

    async def run() -> tuple[float, list]:
        limits = httpx.Limits(max_connections=count + 10)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            started = time.monotonic()
            results = await asyncio.gather(*(stream(client) for _ in range(count)))
            return time.monotonic() - started, results

    elapsed, results = asyncio.run(run())
    assert all(r == [f"data: {i}" for i in range(5)] for r in results)
    assert elapsed < 3, elapsed
