"""systemd: socket activation (``LISTEN_FDS``) and readiness notification (``NOTIFY_SOCKET``)."""

from __future__ import annotations

import signal
import socket

import pytest

from .conftest import http_get

pytestmark = pytest.mark.timeout(60)

#: What systemd does before exec: the socket at fd 3, LISTEN_PID = the pid that execs greenserve.
SHIM = (
    "import os, sys\n"
    "fd = int(os.environ.pop('SHIM_FD'))\n"
    "if fd != 3:\n"
    "    os.dup2(fd, 3)\n"
    "    os.close(fd)\n"
    "os.environ['LISTEN_FDS'] = '1'\n"
    "os.environ['LISTEN_PID'] = str(os.getpid())\n"
    "os.execvp(sys.executable, [sys.executable, '-m', 'greenserve', *sys.argv[1:]])\n"
)


def test_socket_activation_serves_on_the_inherited_socket(master):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        port = listener.getsockname()[1]
        # The factory's "-b 127.0.0.1:0" is ignored: the activated socket wins.
        server = master(
            "mapp:app",
            "-w",
            "2",
            env={"SHIM_FD": str(listener.fileno())},
            pass_fds=(listener.fileno(),),
            shim=SHIM,
        )
        server.wait_for(r"Using 1 socket\(s\) from systemd socket activation")
        assert server.url == f"http://127.0.0.1:{port}"
        workers = server.wait_workers(lambda pids: len(pids) == 2)
        status, body = http_get(("127.0.0.1", port), "/")
        assert status == 200 and int(body) in workers
        assert server.stop(signal.SIGTERM, timeout=10) == 0
        # The socket belongs to "systemd" (this test): still open and listening here.
        assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    finally:
        listener.close()


def _receive(sock: socket.socket, wanted: str, timeout: float) -> list[str]:
    """Datagrams until one contains ``wanted`` (all of them, for the error message)."""
    messages: list[str] = []
    sock.settimeout(timeout)
    while True:
        try:
            data = sock.recv(4096).decode()
        except TimeoutError:
            raise AssertionError(f"{wanted!r} not received; got {messages}") from None
        messages.append(data)
        if wanted in data.splitlines():
            return messages


def test_notify_socket_gets_ready_and_stopping(master, tmp_path):
    path = tmp_path / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        notify.bind(str(path))
        server = master("mapp:app", "-w", "2", env={"NOTIFY_SOCKET": str(path)}, ready=None)
        messages = _receive(notify, "READY=1", 15)
        ready = messages[-1].splitlines()
        assert f"MAINPID={server.pid}" in ready
        # READY=1 means serving: every worker is up and a request succeeds at once.
        server.wait_for(r"\] Ready: ", timeout=2)
        assert server.get("/")[0] == 200
        server.send_signal(signal.SIGTERM)
        _receive(notify, "STOPPING=1", 10)
        assert server.wait(10) == 0
    finally:
        notify.close()


def test_single_process_uses_the_activated_socket_and_notifies(master, tmp_path):
    """--single-process under a systemd .socket unit: the passed socket, not --bind; READY=1 once serving."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    path = tmp_path / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        port = listener.getsockname()[1]
        notify.bind(str(path))
        server = master(
            "mapp:app",
            "--single-process",
            env={"SHIM_FD": str(listener.fileno()), "NOTIFY_SOCKET": str(path)},
            pass_fds=(listener.fileno(),),
            shim=SHIM,
            ready=r"serving mapp:app",
        )
        server.wait_for(r"Using 1 socket\(s\) from systemd socket activation")
        assert server.url == f"http://127.0.0.1:{port}"
        ready = _receive(notify, "READY=1", 10)[-1].splitlines()
        assert f"MAINPID={server.pid}" in ready
        status, body = http_get(("127.0.0.1", port), "/")
        assert status == 200 and int(body) == server.pid
        assert server.stop(signal.SIGTERM, timeout=10) == 0
        assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    finally:
        listener.close()
        notify.close()
