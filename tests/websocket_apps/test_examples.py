"""The WebSocket examples: served as their READMEs say, driven by their own clients."""

from __future__ import annotations

import subprocess
import sys

import requests

from tests.conftest import ROOT, _clean_environ

EXAMPLES = ROOT / "examples"


def run_client(example: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / example / "client.py"), *args],
        input="hello from the test\n\nsecond line\n",
        cwd=str(ROOT),
        env=_clean_environ(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_flask_socketio_chat_example(greenserve):
    server = greenserve("--chdir", "examples/flask_socketio_chat", "app:app", cwd=ROOT)
    page = requests.get(server.url + "/", timeout=5)
    assert page.status_code == 200
    assert "/socket.io/?EIO=4&transport=websocket" in page.text
    result = run_client("flask_socketio_chat", "--url", server.url, "--room", "test", "--wait", "0")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # python-socketio runs event handlers in their own threads: the announcement of
    # the join and the join's acknowledgement may print in either order.
    assert sorted(lines[:2]) == [
        "[test] server: terminal joined",
        "joined test as terminal (transport: websocket)",
    ]
    assert lines[2:] == [
        "[test] terminal: hello from the test",
        "(delivered to 1 client(s) in test)",
        "[test] terminal: second line",
        "(delivered to 1 client(s) in test)",
        "disconnected (client disconnect)",
    ]


def test_flask_sock_echo_example(greenserve):
    server = greenserve("--chdir", "examples/flask_sock_echo", "app:app", cwd=ROOT)
    assert "new WebSocket" in requests.get(server.url + "/", timeout=5).text
    host, port = server.address
    result = run_client("flask_sock_echo", "--url", f"ws://{host}:{port}/echo", "hello", "a second message")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "echo: hello",
        "echo: a second message",
        "closed by the server: 1000 goodbye",
    ]
