"""Tier (b): ``wsgi.file_wrapper`` bodies go out with sendfile(2), unless ``--no-sendfile``.

On plain TCP and Unix-socket connections. ``os.sendfile`` is wrapped in this
process (the worker runs here): each call is recorded, with the socket it
wrote to and the file it read from, and still performed.
"""

from __future__ import annotations

import io
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from greenserve.config import from_mapping
from greenserve.sockets import Listener
from greenserve.worker.connection import SENDFILE_CHUNK
from greenserve.worker.server import WorkerServer
from tests.conftest import ResponseReader, request_bytes

from .conftest import DEFAULTS, run_in_thread

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
OFFSET = 1000


@dataclass
class SendfileCall:
    #: The local and peer addresses of the socket written to (None: not a socket).
    local: object
    peer: object
    #: The inode of the file read from.
    inode: int
    offset: int
    count: int
    sent: int


@pytest.fixture
def sendfile_calls(monkeypatch: pytest.MonkeyPatch) -> list[SendfileCall]:
    """Records the os.sendfile calls the worker makes (each is still performed)."""
    calls: list[SendfileCall] = []
    real = os.sendfile

    def recording(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        local = peer = None
        if stat.S_ISSOCK(os.fstat(out_fd).st_mode):
            with socket.socket(fileno=os.dup(out_fd)) as out:
                local, peer = out.getsockname(), out.getpeername()
        sent = real(out_fd, in_fd, offset, count)
        calls.append(SendfileCall(local, peer, os.fstat(in_fd).st_ino, offset or 0, count, sent))
        return sent

    monkeypatch.setattr(os, "sendfile", recording)
    return calls


def _file_app(path: Path, offset: int = 0):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        handle = open(path, "rb")  # noqa: SIM115 - the server closes it (FileWrapper.close)
        handle.seek(offset)
        return environ["wsgi.file_wrapper"](handle)

    return app


def _fetch(h, method: str = "GET") -> tuple[int, dict[str, str], bytes, tuple[str, int]]:
    """One request: ``(status, headers, body, the client's own address)``."""

    def fetch():
        conn = h.http()
        try:
            conn.request(method, "/")
            response = conn.getresponse()
            body = response.read()
            return response.status, dict(response.getheaders()), body, conn.sock.getsockname()
        finally:
            conn.close()

    return run_in_thread(fetch)


@pytest.fixture
def payload_file(tmp_path: Path) -> Path:
    path = tmp_path / "payload.bin"
    path.write_bytes(PAYLOAD)
    return path


def test_the_whole_body_goes_from_the_file_to_the_client_socket_with_sendfile(
    harness, payload_file, sendfile_calls
):
    h = harness(_file_app(payload_file, OFFSET))  # --sendfile is the default
    status, headers, body, client = _fetch(h)
    assert status == 200
    assert body == PAYLOAD[OFFSET:]
    assert headers["Content-Length"] == str(len(PAYLOAD) - OFFSET)  # the rest of the file
    assert sendfile_calls, "the body was not sent with sendfile(2)"
    # Every byte of the body: from the file, from its position on, straight into the client's connection.
    assert all(call.peer == client for call in sendfile_calls)
    assert {call.inode for call in sendfile_calls} == {payload_file.stat().st_ino}
    assert sendfile_calls[0].offset == OFFSET
    assert sum(call.sent for call in sendfile_calls) == len(PAYLOAD) - OFFSET
    assert all(call.count <= SENDFILE_CHUNK for call in sendfile_calls)


def test_no_sendfile_sends_the_same_body_without_it(harness, payload_file, sendfile_calls):
    h = harness(_file_app(payload_file, OFFSET), sendfile=False)
    status, _, body, _ = _fetch(h)
    assert (status, body) == (200, PAYLOAD[OFFSET:])  # read and sent in pieces instead
    assert sendfile_calls == []


def test_head_sends_no_file(harness, payload_file, sendfile_calls):
    h = harness(_file_app(payload_file))
    status, headers, body, _ = _fetch(h, "HEAD")
    assert (status, body) == (200, b"")
    assert headers["Content-Length"] == str(len(PAYLOAD))
    assert sendfile_calls == []


def test_a_file_like_without_a_descriptor_is_iterated(harness, sendfile_calls):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](io.BytesIO(PAYLOAD), 65536)

    h = harness(app)
    status, _, body, _ = _fetch(h)
    assert (status, body) == (200, PAYLOAD)
    assert sendfile_calls == []


def test_a_unix_socket_connection_gets_sendfile_too(tmp_path, payload_file, sendfile_calls):
    """A proxy on the same host (nginx's ``server unix:...``) is served the same way."""
    path = tmp_path / "web.sock"
    std = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    std.bind(str(path))
    std.listen(8)
    listener = Listener(std, "unix", server_name="localhost", server_port="80", unix_path=str(path))
    server = WorkerServer(from_mapping(DEFAULTS, "test"), _file_app(payload_file), [listener])
    server.start()

    def fetch():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(5)
            client.connect(str(path))
            client.sendall(request_bytes("GET", "/"))
            return ResponseReader(client).read()

    try:
        response = run_in_thread(fetch)
    finally:
        server.kill()
    assert (response.status, response.body) == (200, PAYLOAD)
    assert sendfile_calls
    assert all(call.local == str(path) for call in sendfile_calls)
    assert sum(call.sent for call in sendfile_calls) == len(PAYLOAD)
