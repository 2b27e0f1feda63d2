"""Tier (b): ``--sendfile`` / ``--no-sendfile`` decide how a ``wsgi.file_wrapper`` body is sent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .conftest import run_in_thread

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture
def sendfile_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the os.sendfile calls the worker makes (each is still performed)."""
    calls: list[int] = []
    real = os.sendfile

    def counting(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        calls.append(count)
        return real(out_fd, in_fd, offset, count)

    monkeypatch.setattr(os, "sendfile", counting)
    return calls


def _file_app(path: Path):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(path, "rb"))

    return app


@pytest.mark.parametrize("enabled", [True, False], ids=["sendfile", "no-sendfile"])
def test_file_wrapper_body_is_the_file_either_way(harness, tmp_path, sendfile_calls, enabled):
    path = tmp_path / "payload.bin"
    path.write_bytes(PAYLOAD)
    h = harness(_file_app(path), sendfile=enabled)

    def fetch() -> bytes:
        conn = h.http()
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            assert response.status == 200
            return response.read()
        finally:
            conn.close()

    assert run_in_thread(fetch) == PAYLOAD
    assert bool(sendfile_calls) is enabled
