"""A real FastAPI application served by the real ``greenserve`` command."""

from __future__ import annotations

import itertools
import json
import socket
import time

import httpx
import pytest
import requests
from websockets.sync.client import connect

from tests.asgi.conftest import stop, wait_for_file, worker_pids, ws_url
from tests.conftest import ResponseReader, request_bytes


@pytest.fixture(scope="module")
def single_server(module_serve):
    return module_serve("--single-process", "fastapi_app:app")


@pytest.fixture(scope="module")
def two_workers(module_serve):
    server = module_serve("-w", "2", "fastapi_app:app", ready=None)
    server.wait_for(r"Ready: 2 worker", timeout=30)
    return server


@pytest.fixture(params=["single", "workers2"])
def fastapi_server(request):
    return request.getfixturevalue("single_server" if request.param == "single" else "two_workers")


def test_path_and_query_params(fastapi_server):
    response = requests.get(
        fastapi_server.url + "/items/42", params={"q": "héllo wörld", "limit": 3}, timeout=5
    )
    assert response.status_code == 200
    assert response.json() == {"item_id": 42, "q": "héllo wörld", "limit": 3}
    # Validation errors come from FastAPI itself (422), through the bridge.
    bad = requests.get(fastapi_server.url + "/items/not-a-number", timeout=5)
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["path", "item_id"]


def test_json_body_with_pydantic_model(fastapi_server):
    item = {"name": "widget", "price": 2.5, "tags": ["a", "b"]}
    response = httpx.post(fastapi_server.url + "/items", json=item, timeout=5)
    assert response.status_code == 200
    assert response.json() == {"created": item, "double": 5.0}
    invalid = httpx.post(fastapi_server.url + "/items", json={"name": "widget"}, timeout=5)
    assert invalid.status_code == 422


def test_dependency(fastapi_server):
    assert requests.get(fastapi_server.url + "/me", headers={"X-Token": "secret"}, timeout=5).json() == {
        "user": "alice"
    }
    denied = requests.get(fastapi_server.url + "/me", headers={"X-Token": "nope"}, timeout=5)
    assert denied.status_code == 401
    assert denied.json() == {"detail": "bad token"}


def test_two_workers_each_run_the_app(two_workers):
    assert len(set(worker_pids(two_workers))) == 2
    pids = set()
    for _ in range(20):
        with requests.Session() as session:  # a new connection each time
            pids.add(session.get(two_workers.url + "/pid", timeout=5).json()["pid"])
    assert pids <= set(worker_pids(two_workers))


def test_streaming_response_arrives_chunk_by_chunk(fastapi_server):
    delay = 0.25
    arrivals = []
    started = time.monotonic()
    with requests.get(fastapi_server.url + f"/sse?n=5&delay={delay}", stream=True, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers.get("transfer-encoding") == "chunked"
        buffer = b""
        for piece in response.iter_content(chunk_size=None):
            buffer += piece
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                arrivals.append((event.decode(), time.monotonic() - started))
    assert [event for event, _ in arrivals] == [f"data: {i}" for i in range(5)]
    gaps = [b - a for (_, a), (_, b) in itertools.pairwise(arrivals)]
    # Each event arrives when the app yields it, not all at the end.
    assert arrivals[0][1] < delay, arrivals
    assert all(gap > delay * 0.6 for gap in gaps), arrivals


def test_background_task_runs_after_the_response(fastapi_server, tmp_path):
    marker = tmp_path / f"bg-{time.monotonic_ns()}.json"
    started = time.time()
    response = requests.post(
        fastapi_server.url + "/background", params={"marker": str(marker), "delay": 0.3}, timeout=5
    )
    received = time.time()
    assert response.status_code == 200
    assert received - started < 0.3, "the response waited for the background task"
    assert not marker.exists()
    written = wait_for_file(marker, timeout=5)
    assert written["written_at"] >= response.json()["responded_at"] + 0.25


def test_websocket_echo_text_and_bytes(fastapi_server):
    with connect(ws_url(fastapi_server, "/ws"), open_timeout=5, close_timeout=2, proxy=None) as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "echo:hello"
        ws.send(b"\x00\x01binary")
        assert ws.recv(timeout=5) == b"echo:\x00\x01binary"
        big = "x" * 200_000
        ws.send(big)
        assert ws.recv(timeout=5) == "echo:" + big


def test_keep_alive_session_with_post_bodies(fastapi_server):
    ports = set()
    with httpx.Client(base_url=fastapi_server.url, timeout=5) as client:
        for i in range(20):
            response = client.post("/items", json={"name": f"n{i}", "price": i})
            assert response.status_code == 200
            assert response.json()["double"] == i * 2
            assert client.get(f"/items/{i}").json()["item_id"] == i
            ports.add(client.get("/client").json()["port"])
    assert len(ports) == 1, "the connection was not kept alive"


def test_pipelined_requests_on_one_connection(fastapi_server):
    body = json.dumps({"name": "pipe", "price": 1.5}).encode()
    wire = b"".join(
        [
            request_bytes("GET", "/items/1?q=a"),
            request_bytes("POST", "/items", {"Content-Type": "application/json"}, body),
            request_bytes("GET", "/me", {"X-Token": "secret"}),
            request_bytes("POST", "/items", {"Content-Type": "application/json"}, body),
            request_bytes("GET", "/items/2"),
        ]
    )
    with socket.create_connection(fastapi_server.address, timeout=5) as sock:
        sock.sendall(wire)
        reader = ResponseReader(sock)
        bodies = [json.loads(reader.read().body) for _ in range(5)]
    assert bodies[0] == {"item_id": 1, "q": "a", "limit": 10}
    assert bodies[1] == bodies[3] == {"created": {"name": "pipe", "price": 1.5, "tags": []}, "double": 3.0}
    assert bodies[2] == {"user": "alice"}
    assert bodies[4]["item_id"] == 2


# -- plain ``def`` code, which Starlette runs in anyio's thread pool -------------------


def test_sync_def_endpoint(single_server):
    """FastAPI runs ``def`` endpoints in a worker thread (anyio.to_thread.run_sync)."""
    started = time.monotonic()
    try:
        response = requests.get(single_server.url + "/sync?s=0.1", timeout=2)
    except requests.Timeout:
        pytest.fail(
            f"a plain `def` FastAPI endpoint hung ({time.monotonic() - started:.1f} s without an answer)"
        )
    assert response.status_code == 200
    assert response.json()["slept"] == 0.1


def test_sync_def_dependency(single_server):
    try:
        response = requests.get(
            single_server.url + "/sync-dependency", headers={"X-Token": "secret"}, timeout=2
        )
    except requests.Timeout:
        pytest.fail("a request with a plain `def` dependency hung")
    assert response.json()["user"] == "bob"


def test_sync_background_task(single_server, tmp_path):
    marker = tmp_path / "sync-bg.json"
    response = requests.post(
        single_server.url + "/sync-background", params={"marker": str(marker)}, timeout=2
    )
    assert response.status_code == 200
    wait_for_file(marker, timeout=2)


def test_asyncio_to_thread(single_server):
    """``asyncio.to_thread`` / ``loop.run_in_executor(None, ...)``: asyncio's default executor."""
    try:
        response = requests.get(single_server.url + "/to-thread?s=0.05", timeout=2)
    except requests.Timeout:
        pytest.fail("asyncio.to_thread() in an endpoint hung")
    assert response.json()["slept"] == 0.05


def test_single_process_exits_after_using_asyncio_thread_pool(serve):
    """SIGTERM must end the process even after the app used asyncio's thread pool."""
    server = serve("--single-process", "fastapi_app:app", graceful=1)
    try:
        requests.get(server.url + "/to-thread?s=0", timeout=1)
    except requests.Timeout:
        pass  # see test_asyncio_to_thread
    started = time.monotonic()
    code = stop(server, timeout=5)
    elapsed = time.monotonic() - started
    assert "Worker" in server.log and "stopped" in server.log
    assert code == 0, f"exit code {code} after {elapsed:.1f} s (-9: still running after 'Worker stopped')"


def test_thread_pool_code_on_uvloop_does_not_hang(serve):
    """With ``--loop uvloop``, code that needs a thread either works or fails fast
    (a 500 and a log line); it never leaves the request hanging."""
    server = serve("--single-process", "--loop", "uvloop", "fastapi_app:app", graceful=1)
    for path in ("/sync?s=0.05", "/to-thread?s=0.05", "/sync-dependency"):
        try:
            response = requests.get(server.url + path, headers={"X-Token": "secret"}, timeout=3)
        except requests.Timeout:
            pytest.fail(f"{path} hung on --loop uvloop")
        assert response.status_code in (200, 500), (path, response.status_code)
    assert requests.get(server.url + "/items/1", timeout=3).status_code == 200
    assert stop(server, timeout=5) == 0
