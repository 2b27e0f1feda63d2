"""``--request-id``: one id per request, from a trusted proxy or made by the server (tier c).

A real ``greenserve`` is asked by real clients (``http.client``, raw sockets, the
``websockets`` client); the application answers with the id it was given, and
the test compares it with the response header and the access log, text and JSON.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect as ws_connect

from tests.conftest import ResponseReader, request_bytes, wait_until

APPS = Path(__file__).resolve().parent / "apps"
#: What greenserve makes: 128 random bits as hex.
GENERATED = re.compile(r"[0-9a-f]{32}")
#: Every character a valid id may hold, in one id: visible ASCII without '"' and '\'.
PASSES = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"\\')
#: The access log format of these tests: the id atom and the request line.
FORMAT = 'ACCESS %(request_id)s "%(r)s" %(s)s'

pytestmark = pytest.mark.timeout(90)


def start(greenserve, *args: str, app: str = "request_id_app:app", json_log: bool = False):
    """A server with --request-id and an access log of FORMAT lines (unless ``args`` say otherwise)."""
    argv = list(args)
    if "--access-logformat" not in argv:
        argv += ["--access-logformat", FORMAT]
    if json_log:
        argv += ["--log-format", "json"]
    return greenserve(*argv, app, cwd=APPS, quiet=False)


def get(
    address: tuple[str, int], path: str = "/", headers: dict[str, str] | None = None
) -> tuple[int, http.client.HTTPMessage, dict[str, Any]]:
    """One request on a fresh connection: (status, response headers, the app's JSON or {})."""
    conn = http.client.HTTPConnection(*address, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        data = json.loads(body) if response.getheader("Content-Type") == "application/json" else {}
        return response.status, response.headers, data
    finally:
        conn.close()


def raw_get(address: tuple[str, int], header_value: bytes, name: bytes = b"X-Request-ID"):
    """A GET with ``name: header_value`` as raw bytes (values http.client would refuse to send)."""
    head = b"GET / HTTP/1.1\r\nHost: x\r\n" + name + b": " + header_value + b"\r\nConnection: close\r\n\r\n"
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(head)
        response = ResponseReader(sock).read()
    return response.status, response.headers, json.loads(response.body)


def access_ids(server, start: int = 0) -> list[str]:
    """The id of every text access line so far (from line ``start``)."""
    return [line.split()[1] for line in server.lines[start:] if line.startswith("ACCESS ")]


def json_access(server, start: int = 0) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in list(server.lines[start:]) if line.startswith("{")]
    return [record for record in records if record["logger"] == "greenserve.access"]


def wait_access(server, count: int, start: int = 0, json_log: bool = False) -> None:
    def enough() -> bool:
        return len(json_access(server, start) if json_log else access_ids(server, start)) >= count

    assert wait_until(enough, 10), server.log


# -- off by default -----------------------------------------------------------------------


def test_off_by_default(greenserve):
    server = greenserve("--log-format", "json", "request_id_app:app", cwd=APPS, quiet=False)
    start = len(server.lines)
    status, headers, data = get(server.address, headers={"X-Request-ID": "from-a-proxy"})
    assert status == 200
    assert data["has_key"] is False  # no environ key at all
    assert data["header"] == "from-a-proxy"  # the request header itself is there, as for any header
    assert headers.get("X-Request-ID") is None  # not echoed
    wait_access(server, 1, start, json_log=True)
    assert json_access(server, start)[0]["request_id"] is None


def test_off_by_default_for_asgi(greenserve):
    server = greenserve("request_id_app:asgi_app", cwd=APPS)
    status, headers, data = get(server.address, headers={"X-Request-ID": "from-a-proxy"})
    assert (status, data["has_key"], headers.get("X-Request-ID")) == (200, False, None)


# -- generated ids ------------------------------------------------------------------------


def test_generated_ids_are_unique_across_requests_and_workers(master):
    server = master("-w", "2", "--request-id", "request_id_app:app", cwd=APPS, ready=r"Ready: 2 worker")
    seen: dict[str, int] = {}
    pids: set[int] = set()

    def one(_: int) -> tuple[str, dict[str, Any]]:
        status, headers, data = get(server.address)
        assert status == 200
        return headers["X-Request-ID"], data

    def batch() -> bool:
        with ThreadPoolExecutor(8) as pool:
            for header, data in pool.map(one, range(100)):
                assert header == data["id"], (header, data)
                assert GENERATED.fullmatch(header), header
                assert header not in seen, f"{header} given twice"
                seen[header] = data["pid"]
                pids.add(data["pid"])
        return len(pids) == 2 and len(seen) >= 300

    # Both workers must have made ids (the kernel spreads new connections; keep asking until it has).
    assert wait_until(batch, 30, 0), f"workers seen: {pids}, ids: {len(seen)}"
    # Keep-alive: each request on one connection gets its own id.
    conn = http.client.HTTPConnection(*server.address, timeout=10)
    try:
        ids = []
        for _ in range(20):
            conn.request("GET", "/")
            response = conn.getresponse()
            ids.append(json.loads(response.read())["id"])
    finally:
        conn.close()
    assert len(set(ids)) == 20 and not set(ids) & set(seen)


def test_ids_differ_after_a_worker_restart(master):
    """A new worker (a new process) never repeats the ids of the one it replaces."""
    server = master("-w", "1", "--request-id", "request_id_app:app", cwd=APPS, ready=r"Ready: 1 worker")
    before = {get(server.address)[2]["id"] for _ in range(20)}
    (old,) = server.workers()
    os.kill(old, 9)
    server.wait_workers(lambda pids: len(pids) == 1 and old not in pids, timeout=20)
    after: set[str] = set()

    def served_by_new() -> bool:
        try:
            data = get(server.address)[2]
        except OSError:
            return False
        after.add(data["id"])
        return data["pid"] != old and len(after) >= 20

    assert wait_until(served_by_new, 20, 0.05)
    assert not before & after


# -- incoming ids -------------------------------------------------------------------------


@pytest.mark.parametrize("json_log", [False, True], ids=["text", "json"])
def test_a_trusted_proxy_id_reaches_the_app_the_log_and_the_response(greenserve, json_log):
    server = start(greenserve, "--request-id", json_log=json_log)  # 127.0.0.1 is trusted by default
    begin = len(server.lines)
    status, headers, data = get(server.address, headers={"X-Request-ID": PASSES})
    assert status == 200
    assert data["id"] == PASSES
    assert headers["X-Request-ID"] == PASSES
    wait_access(server, 1, begin, json_log)
    if json_log:
        (record,) = json_access(server, begin)
        assert record["request_id"] == PASSES
        assert record["message"].split()[1] == PASSES
    else:
        assert access_ids(server, begin) == [PASSES]  # printed as it came: nothing to escape


def test_repeated_header_the_nearest_proxy_counts(greenserve):
    server = start(greenserve, "--request-id")
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(request_bytes(headers=[("X-Request-ID", "client-says"), ("X-Request-ID", "proxy-says")]))
        response = ResponseReader(sock).read()
    assert json.loads(response.body)["id"] == "proxy-says"
    assert response.getheader("X-Request-ID") == "proxy-says"


def test_an_untrusted_peer_id_is_replaced(greenserve):
    server = start(greenserve, "--request-id", "--forwarded-allow-ips", "10.9.9.9")
    begin = len(server.lines)
    status, headers, data = get(server.address, headers={"X-Request-ID": "chosen-by-the-client"})
    assert status == 200
    assert GENERATED.fullmatch(data["id"]), data
    assert headers["X-Request-ID"] == data["id"]
    assert data["header"] == "chosen-by-the-client"  # still readable as a plain request header
    wait_access(server, 1, begin)
    assert access_ids(server, begin) == [data["id"]]


def test_no_proxy_headers_trusts_nobody(greenserve):
    server = start(greenserve, "--request-id", "--no-proxy-headers")
    data = get(server.address, headers={"X-Request-ID": "from-localhost"})[2]
    assert GENERATED.fullmatch(data["id"]), data


#: Values a trusted proxy might pass through from a client: each is replaced, never logged.
HOSTILE = {
    "quote": b'MARK"forged',
    "space": b"MARK forged line",
    "tab": b"MARK\tforged",
    "backslash": b"MARK\\x0Aforged",
    "non-ascii": "MARKé".encode(),
    "latin-1": b"MARK\xff",
    "10 KB": b"MARK" + b"x" * 10240,
    "201 characters": b"MARK" + b"y" * 197,
    "empty": b"",
}


@pytest.mark.parametrize("json_log", [False, True], ids=["text", "json"])
def test_hostile_values_are_replaced_and_never_logged(greenserve, json_log):
    # A trusted peer, and room for the 10 KB header (the default field limit is 8190 bytes).
    server = start(greenserve, "--request-id", "--limit-request-field-size", "16384", json_log=json_log)
    begin = len(server.lines)
    given = []
    for name, value in HOSTILE.items():
        status, headers, data = raw_get(server.address, value)
        assert status == 200, name
        assert GENERATED.fullmatch(data["id"]), (name, data["id"])
        assert headers["X-Request-ID"] == data["id"], name
        given.append(data["id"])
    wait_access(server, len(HOSTILE), begin, json_log)
    lines = server.lines[begin:]
    assert not [line for line in lines if "MARK" in line], "a hostile id was logged"
    if json_log:
        assert [record["request_id"] for record in json_access(server, begin)] == given
    else:
        assert access_ids(server, begin) == given
    # Control characters never get this far: the parser refuses the request (400), no app, no id.
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Request-ID: MARK\nforged\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 400 ")


# -- settings -----------------------------------------------------------------------------


def test_no_request_id_response(greenserve):
    server = start(greenserve, "--request-id", "--no-request-id-response")
    begin = len(server.lines)
    status, headers, data = get(server.address, headers={"X-Request-ID": "abc-1"})
    assert (status, data["id"], headers.get("X-Request-ID")) == (200, "abc-1", None)
    data = get(server.address)[2]
    assert GENERATED.fullmatch(data["id"])
    wait_access(server, 2, begin)
    assert access_ids(server, begin) == ["abc-1", data["id"]]


def test_another_header_name(greenserve):
    server = start(greenserve, "--request-id", "--request-id-header", "X-Correlation-ID")
    status, headers, data = get(server.address, headers={"X-Correlation-ID": "corr-7", "X-Request-ID": "no"})
    assert (status, data["id"], headers["X-Correlation-ID"]) == (200, "corr-7", "corr-7")
    assert headers.get("X-Request-ID") is None


def test_the_application_own_header_wins(greenserve):
    server = start(greenserve, "--request-id")
    status, headers, data = get(server.address, "/own", headers={"X-Request-ID": "abc-2"})
    assert status == 200 and data["id"] == "abc-2"
    assert headers.get_all("X-Request-ID") == ["set-by-the-app"]  # once: the server adds none


def test_error_responses_carry_the_id(greenserve):
    server = start(greenserve, "--request-id")
    begin = len(server.lines)
    status, headers, _ = get(server.address, "/error", headers={"X-Request-ID": "failed-1"})
    assert (status, headers["X-Request-ID"]) == (500, "failed-1")
    wait_access(server, 1, begin)
    assert access_ids(server, begin) == ["failed-1"]


@pytest.mark.parametrize("trust", [True, False], ids=["trusted", "no-trust-unix-peers"])
def test_unix_socket_peers_follow_trust_unix_peers(greenserve, tmp_path, trust):
    path = tmp_path / "s.sock"
    args = ["-b", f"unix:{path}", "--request-id"] + ([] if trust else ["--no-trust-unix-peers"])
    start(greenserve, *args)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(request_bytes(headers={"X-Request-ID": "via-unix", "Connection": "close"}))
        response = ResponseReader(sock).read()
    request_id = json.loads(response.body)["id"]
    assert (request_id == "via-unix") is trust
    assert response.getheader("X-Request-ID") == request_id


# -- ASGI and WebSockets ------------------------------------------------------------------


@pytest.mark.parametrize("access_log", [True, False], ids=["access-log", "no-access-log"])
def test_asgi_scope_has_the_id(greenserve, access_log):
    args = ["--request-id"] + ([] if access_log else ["--no-access-log"])
    server = start(greenserve, *args, app="request_id_app:asgi_app")
    begin = len(server.lines)
    status, headers, data = get(server.address, headers={"X-Request-ID": "asgi-1"})
    assert (status, data["id"], headers["X-Request-ID"]) == (200, "asgi-1", "asgi-1")
    status, headers, data = get(server.address)
    assert GENERATED.fullmatch(data["id"]) and headers["X-Request-ID"] == data["id"]
    if access_log:  # the environ made for the access log has the same id as the scope
        wait_access(server, 2, begin)
        assert access_ids(server, begin) == ["asgi-1", data["id"]]


@pytest.mark.parametrize("app", ["request_id_app:app", "request_id_app:asgi_app"], ids=["wsgi", "asgi"])
def test_websocket_upgrades_have_an_id(greenserve, app):
    server = start(greenserve, "--request-id", app=app)
    begin = len(server.lines)
    url = f"ws://{server.address[0]}:{server.address[1]}/ws"
    with ws_connect(url, additional_headers={"X-Request-ID": "ws-1"}, open_timeout=10) as ws:
        assert ws.response.headers["X-Request-ID"] == "ws-1"  # on the 101
        assert json.loads(ws.recv(timeout=10))["id"] == "ws-1"
    with ws_connect(url, open_timeout=10) as ws:
        made = ws.response.headers["X-Request-ID"]
        assert GENERATED.fullmatch(made)
        assert json.loads(ws.recv(timeout=10))["id"] == made
    wait_access(server, 2, begin)
    assert access_ids(server, begin) == ["ws-1", made]
