"""Listening addresses: TCP v4/v6, Unix sockets, several binds, inherited fds, SO_REUSEPORT."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess

import pytest
import requests

from tests.conftest import raw_exchange, request_bytes, run_cli, wait_until


def _ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def _unix_get(path: str, target: str = "/") -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(path)
        return raw_exchange(sock, request_bytes("GET", target, {"Connection": "close"}))


def test_tcp_v4(greenserve):
    server = greenserve("-b", "127.0.0.1:0", "basic:app")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
    assert server.port != 0
    assert requests.get(server.url, timeout=5).text == "Hello, world!"


@pytest.mark.skipif(not _ipv6_available(), reason="no IPv6 loopback")
def test_tcp_v6(greenserve):
    server = greenserve("-b", "[::1]:0", "probe:app")
    assert server.url.startswith("http://[::1]:")
    with socket.create_connection(("::1", server.port), timeout=5) as sock:
        reply = raw_exchange(sock, request_bytes("GET", "/environ", {"Connection": "close"}))
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert b'"REMOTE_ADDR": "::1"' in reply
    assert b'"SERVER_NAME": "::1"' in reply


def test_unix_socket_with_umask(greenserve, tmp_path):
    path = str(tmp_path / "gs.sock")
    server = greenserve("-b", f"unix:{path}", "--umask", "077", "probe:app")
    assert server.url == f"unix:{path}"
    mode = os.stat(path).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) & 0o077 == 0, oct(mode)
    reply = _unix_get(path, "/environ")
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert b'"REMOTE_ADDR": ""' in reply
    assert server.stop() == 0
    assert not os.path.exists(path)


def test_unix_socket_stale_file_is_replaced(greenserve, tmp_path):
    path = str(tmp_path / "stale.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens
    greenserve("-b", f"unix:{path}", "basic:app")
    assert b"Hello, world!" in _unix_get(path)


MODES = {"master": [], "single": ["--single-process"]}


@pytest.mark.parametrize("mode", list(MODES))
def test_unix_socket_in_use_is_refused(greenserve, tmp_path, mode):
    path = str(tmp_path / "busy.sock")
    greenserve("-b", f"unix:{path}", "basic:app")
    result = run_cli(*MODES[mode], "-b", f"unix:{path}", "basic:app")
    assert result.returncode == 3
    assert "another server is listening" in result.stderr
    assert b"Hello, world!" in _unix_get(path)  # the first server is untouched


def test_several_binds(greenserve, tmp_path):
    path = str(tmp_path / "multi.sock")
    server = greenserve("-b", "127.0.0.1:0", "-b", "127.0.0.1:0", "-b", f"unix:{path}", "basic:app")
    tcp = [url for url in server.urls if url.startswith("http://")]
    assert len(tcp) == 2
    assert tcp[0] != tcp[1]
    for url in tcp:
        assert requests.get(url, timeout=5).text == "Hello, world!"
    assert f"unix:{path}" in server.urls
    assert b"Hello, world!" in _unix_get(path)


def test_inherited_fd(greenserve):
    listener = socket.socket()
    try:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        fd = listener.fileno()
        server = greenserve("-b", f"fd://{fd}", "probe:app", pass_fds=(fd,))
        assert server.port == port
        reply = requests.get(f"http://127.0.0.1:{port}/environ", timeout=5).json()
        assert reply["SERVER_PORT"] == str(port)
    finally:
        listener.close()


@pytest.mark.parametrize("mode", list(MODES))
def test_inherited_fd_that_is_not_a_socket(greenserve, tmp_path, mode):
    handle = open(tmp_path / "plain", "wb")  # noqa: SIM115
    try:
        server = greenserve(
            *MODES[mode],
            "-b",
            f"fd://{handle.fileno()}",
            "basic:app",
            ready=None,
            pass_fds=(handle.fileno(),),
        )
        code = server.wait(timeout=15)
    finally:
        handle.close()
    assert code == 3
    assert "not a socket" in server.log
    assert "Traceback" not in server.log


def test_reuse_port_lets_two_servers_share_a_port(greenserve):
    first = greenserve("--reuse-port", "probe:app")
    second = greenserve("-b", f"127.0.0.1:{first.port}", "--reuse-port", "probe:app")
    assert second.port == first.port
    pids = set()
    for _ in range(60):
        # New connections each time: the kernel spreads them over both listeners.
        pids.add(requests.get(first.url + "/pid", headers={"Connection": "close"}, timeout=5).text)
        if len(pids) == 2:
            break
    assert len(pids) == 2, "both servers answer on the shared port"


@pytest.mark.parametrize("mode", list(MODES))
def test_without_reuse_port_the_second_bind_fails(greenserve, mode):
    first = greenserve("basic:app")
    result = run_cli(*MODES[mode], "-b", f"127.0.0.1:{first.port}", "basic:app")
    assert result.returncode == 3
    assert "already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_backlog(greenserve):
    server = greenserve("--backlog", "17", "basic:app")
    assert requests.get(server.url, timeout=5).status_code == 200
    try:
        listing = subprocess.run(
            ["ss", "-ltnH", f"sport = :{server.port}"], capture_output=True, text=True, timeout=5
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        pytest.skip("ss is not available")
    # For a listening socket ss shows the backlog in the Send-Q column.
    columns = listing.split()
    assert columns, listing
    assert columns[2] == "17", listing


def test_backlog_out_of_range():
    result = run_cli("--backlog", "0", "basic:app")
    assert result.returncode == 2
    assert "backlog" in result.stderr


def test_listener_closed_after_exit(greenserve):
    server = greenserve("basic:app")
    port = server.port
    assert server.stop() == 0

    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        return False

    assert wait_until(refused, 2)
