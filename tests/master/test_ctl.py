"""``greenserve ctl`` against real masters: every command, finding the master, the socket's safety.

Each test gives its masters and its ``greenserve ctl`` runs the same private
``XDG_RUNTIME_DIR`` and ``TMPDIR``, so every default socket directory
``greenserve ctl`` looks in is the test's own, and no other server on the
machine (the other tests' masters included) is seen.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli, wait_until

from .conftest import APPS, Master, http_get, wait_gone

pytestmark = pytest.mark.timeout(90)


class Ctl:
    """Runs ``python -m greenserve ctl ARGS`` with the test's runtime directory."""

    def __init__(self, runtime: Path) -> None:
        self.runtime = runtime
        # TMPDIR too: the last default directory is in the temporary directory,
        # where masters started by concurrent tests put their sockets.
        self.env = {"XDG_RUNTIME_DIR": str(runtime), "TMPDIR": str(runtime)}

    @property
    def directory(self) -> Path:
        return self.runtime / "greenserve"

    def __call__(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
        result = run_cli("ctl", *args, env=self.env, timeout=90)
        assert result.returncode == expect, (result.returncode, result.stdout, result.stderr)
        return result

    def json(self, *args: str) -> dict:
        return json.loads(self("--json", *args).stdout)

    def error(self, *args: str) -> str:
        """The one-line error of a command that must fail (exit code 2)."""
        result = self(*args, expect=2)
        assert result.stdout == ""
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        return lines[0]


@pytest.fixture
def ctl(tmp_path: Path) -> Ctl:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    return Ctl(runtime)


def requests_total(ctl: Ctl) -> int:
    return sum(worker["requests"] for worker in ctl.json("workers")["workers"])


# -- status and workers --------------------------------------------------------------------------


def test_status_text_and_json(master, ctl):
    server = master("mapp:app", "-w", "2", env=ctl.env)
    status = ctl.json("status")
    assert status["pid"] == server.pid
    assert status["app"] == "mapp:app"
    assert status["generation"] == 1
    assert status["workers"]["wanted"] == 2
    assert status["listeners"] == [server.url]
    assert status["control_socket"] == str(ctl.directory / f"{server.pid}.sock")
    assert 0 <= status["uptime"] < 60

    text = ctl("status").stdout
    assert f"master       {server.pid} (greenserve " in text
    assert "application  mapp:app" in text
    assert "generation   1" in text
    assert f"listening    {server.url}" in text


def test_workers_show_requests_connections_and_memory(master, ctl):
    server = master("mapp:app", "-w", "2", env=ctl.env)
    pids = server.wait_workers(lambda found: len(found) == 2)
    result = ctl.json("workers")
    assert result["generation"] == 1
    rows = result["workers"]
    assert [row["pid"] for row in rows] == pids  # oldest (lowest age) first
    assert [row["age"] for row in rows] == [1, 2]
    for row in rows:
        assert row["generation"] == 1
        assert row["state"] in ("booting", "ready")
        assert row["rss"] > 1024 * 1024
        assert 0 <= row["heartbeat_age"] < 30
        assert row["uptime"] >= 0

    # Counted by the workers, reported with their heartbeat (about once a second).
    for _ in range(5):
        assert http_get(server.address)[0] == 200
    assert wait_until(lambda: requests_total(ctl) >= 5, 10, 0.2), ctl.json("workers")
    # A connection held open shows, wherever it landed.
    with socket.create_connection(server.address, timeout=5):
        assert wait_until(lambda: sum(w["connections"] for w in ctl.json("workers")["workers"]) >= 1, 10, 0.2)

    text = ctl("workers").stdout.splitlines()
    assert text[0].split() == [
        "PID",
        "AGE",
        "GEN",
        "STATE",
        "UPTIME",
        "REQUESTS",
        "CONNS",
        "BUSY",
        "HEARTBEAT",
        "RSS",
    ]
    assert [int(line.split()[0]) for line in text[1:3]] == pids
    assert "MiB" in text[1]
    assert text[-1] == "2 workers"
    # Columns are aligned: every row is as wide as the header up to the last column.
    assert len({line.index("ago") for line in text[1:3]}) == 1


# -- commands that act ---------------------------------------------------------------------------


def test_add_and_remove_change_the_number_of_workers(master, ctl):
    server = master("mapp:app", "-w", "1", env=ctl.env)
    (first,) = server.wait_workers(lambda found: len(found) == 1)

    assert ctl("add", "2").stdout == "workers: 1 -> 3 wanted\n"
    server.wait_workers(lambda found: len(found) == 3)
    assert ctl.json("status")["workers"]["wanted"] == 3

    assert ctl("remove", "5").stdout == "workers: 3 -> 1 wanted\n"
    (left,) = server.wait_workers(lambda found: len(found) == 1)
    assert left != first  # the oldest stop first
    assert ctl("remove").stdout == "workers: 1 wanted (unchanged: never fewer than 1)\n"
    assert server.count(r"Control: add 2 \(asked by pid \d+, uid \d+\)", server.pid) == 1

    # --wait returns once the new worker is up: no polling needed after it.
    result = ctl("add", "--wait")
    assert result.stdout == "workers: 1 -> 2 wanted\n2 workers of generation 1 ready\n"
    workers = ctl.json("status")["workers"]
    assert workers["ready"] == workers["running"] == 2


def test_add_refuses_a_bad_count(master, ctl):
    master("mapp:app", "-w", "1", env=ctl.env)
    assert "N must be from 1 to 1000" in ctl.error("add", "0")
    assert "invalid int value" in ctl.error("add", "many")


def test_reload_starts_a_new_generation(master, ctl):
    server = master("mapp:app", "-w", "2", env=ctl.env)
    old = server.wait_workers(lambda found: len(found) == 2)
    result = ctl("reload", "--wait")
    assert result.stdout.splitlines() == [
        "reloading: generation 2; new workers start, the previous ones stop once the new ones are ready",
        "2 workers of generation 2 ready",
    ]
    rows = ctl.json("workers")["workers"]
    assert [row["generation"] for row in rows] == [2, 2]
    assert not {row["pid"] for row in rows} & set(old)
    assert all(wait_gone(pid, 10) for pid in old)


def test_a_failed_reload_is_an_error_and_keeps_the_workers(master, ctl, tmp_path):
    conf = tmp_path / "greenserve.conf.py"
    conf.write_text("workers = 2\n")
    server = master("mapp:app", "-c", str(conf), env=ctl.env)
    old = server.wait_workers(lambda found: len(found) == 2)
    conf.write_text("workers = 'many'\n")
    error = ctl.error("reload")
    assert error.startswith("greenserve ctl: error: reload failed: ")
    assert "workers" in error and "the current configuration is kept" in error
    assert ctl.json("status")["generation"] == 1
    assert server.workers() == old


def test_reopen_reopens_the_log_files(master, ctl, tmp_path):
    logfile = tmp_path / "error.log"
    rotated = tmp_path / "error.log.1"
    server = master("mapp:app", "-w", "1", "--error-logfile", str(logfile), ready=None, env=ctl.env)
    assert wait_until(lambda: logfile.exists() and "Ready: " in logfile.read_text(), 15), server.log
    address = ("127.0.0.1", int(ctl.json("status")["listeners"][0].rsplit(":", 1)[1]))
    (worker,) = server.wait_workers(lambda found: len(found) == 1)

    logfile.rename(rotated)
    assert ctl("reopen").stdout == "log files reopened in the master; each worker reopens its own\n"
    # The reply comes once the master has reopened its files.
    assert logfile.exists()
    assert "Control: reopen" in rotated.read_text()

    def worker_logs_to_new_file() -> bool:
        http_get(address, "/log?marker=after-reopen")
        return "app says after-reopen" in logfile.read_text()

    assert wait_until(worker_logs_to_new_file, 5, 0.2), (rotated.read_text(), logfile.read_text())
    assert f"[{worker}] [WARNING] app says after-reopen" in logfile.read_text()


def test_config_shows_each_value_and_its_source(master, ctl, tmp_path):
    conf = tmp_path / "greenserve.conf.py"
    conf.write_text("max_requests = 1000\n")
    env = {**ctl.env, "GREENSERVE_KEEP_ALIVE": "7"}
    master("mapp:app", "-w", "2", "-c", str(conf), env=env)
    settings = ctl.json("config")["settings"]
    assert settings["workers"] == {"value": 2, "source": "command line"}
    assert settings["keep_alive"] == {"value": 7, "source": "GREENSERVE_KEEP_ALIVE"}
    assert settings["max_requests"] == {"value": 1000, "source": str(conf)}
    assert settings["backlog"] == {"value": 2048, "source": "default"}
    assert settings["bind"]["value"] == ["127.0.0.1:0"]

    rows = {line.split()[0]: line.split() for line in ctl("config").stdout.splitlines()}
    assert rows["SETTING"] == ["SETTING", "VALUE", "SOURCE"]
    assert rows["workers"] == ["workers", "2", "command", "line"]
    assert rows["keep_alive"] == ["keep_alive", "7.0", "GREENSERVE_KEEP_ALIVE"]
    assert rows["backlog"] == ["backlog", "2048", "default"]

    # A reload reads the file again: the master keeps the new sources.
    conf.write_text("max_requests = 2000\n")
    ctl("reload", "--wait")
    settings = ctl.json("config")["settings"]
    assert settings["max_requests"] == {"value": 2000, "source": str(conf)}
    assert settings["workers"] == {"value": 2, "source": "command line"}
    # Workers added since are shown beside the configured number.
    ctl("add")
    assert ctl.json("config")["workers_now"] == 3
    assert "workers: 3 now (changed by add/remove or SIGTTIN/SIGTTOU)" in ctl("config").stdout


# -- the socket ----------------------------------------------------------------------------------


def test_socket_is_owner_only_and_removed_at_exit(master, ctl):
    server = master("mapp:app", "-w", "1", env=ctl.env)
    path = ctl.directory / f"{server.pid}.sock"
    info = path.stat()
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == os.geteuid()
    assert stat.S_IMODE(ctl.directory.stat().st_mode) == 0o700
    server.wait_for(rf"Control socket: {path} \({server.pid}\)")
    assert server.stop(signal.SIGTERM, timeout=10) == 0
    assert not path.exists()
    assert "no greenserve master of this user has a control socket" in ctl.error("status")


def test_stale_socket_of_a_killed_master(master, ctl):
    killed = Master(["-b", "127.0.0.1:0", "--no-access-log", "-w", "1", "mapp:app"], cwd=APPS, env=ctl.env)
    try:
        killed.start(ready=r"\] Ready: ")
        path = ctl.directory / f"{killed.pid}.sock"
        assert path.exists()
    finally:
        killed.kill_group()
    assert path.exists()
    error = ctl.error("status")
    assert "stale control socket" in error and str(path) in error
    assert "stale socket" in ctl.error("--socket", str(path), "status")
    # The next master clears what killed masters left.
    second = master("mapp:app", "-w", "1", env=ctl.env)
    assert not path.exists()
    assert ctl.json("status")["pid"] == second.pid


def test_finding_the_master_among_several(master, ctl, tmp_path):
    pidfile = tmp_path / "second.pid"
    first = master("mapp:app", "-w", "1", env=ctl.env)
    second = master("mapp:app", "-w", "1", "--pidfile", str(pidfile), env=ctl.env)
    error = ctl.error("status")
    assert "several greenserve masters are running" in error
    assert f"{first.pid} (mapp:app)" in error and f"{second.pid} (mapp:app)" in error
    assert ctl.json("--pid", str(first.pid), "status")["pid"] == first.pid
    assert ctl.json("status", "--pidfile", str(pidfile))["pid"] == second.pid
    socket_path = ctl.directory / f"{first.pid}.sock"
    assert ctl.json("--socket", str(socket_path), "status")["pid"] == first.pid
    assert "give one of --socket, --pid, not several" in ctl.error(
        "--socket", str(socket_path), "--pid", "1", "status"
    )


def test_errors_without_a_server(ctl, tmp_path):
    assert "no greenserve master of this user" in ctl.error("status")
    assert f"no server: {tmp_path}/none.sock does not exist" in ctl.error(
        "--socket", str(tmp_path / "none.sock"), "status"
    )
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(10)
    assert f"no server: there is no process {gone.pid}" in ctl.error("--pid", str(gone.pid), "workers")
    not_a_pid = tmp_path / "bad.pid"
    not_a_pid.write_text("hello\n")
    assert "no process ID in it" in ctl.error("--pidfile", str(not_a_pid), "status")


def test_control_socket_off(master, ctl):
    master("mapp:app", "-w", "1", "--no-control-socket", env=ctl.env)
    assert not ctl.directory.exists() or not list(ctl.directory.iterdir())
    assert "no greenserve master" in ctl.error("status")


def test_bad_input_does_not_disturb_the_master(master, ctl):
    server = master("mapp:app", "-w", "2", env=ctl.env)
    workers = server.wait_workers(lambda found: len(found) == 2)
    path = str(ctl.directory / f"{server.pid}.sock")

    def exchange(data: bytes) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(path)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(data)
            reply = b""
            with contextlib.suppress(ConnectionResetError):
                while not reply.endswith(b"\n"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    reply += chunk
            return json.loads(reply)

    # One client that connects and says nothing does not hold the others up.
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.connect(path)
    try:
        assert exchange(b"hello\n")["error"].startswith("not a JSON request")
        assert exchange(b"[1, 2]\n")["error"].startswith("not a JSON request")
        assert exchange(b"[" * 3000 + b"\n")["error"].startswith("not a JSON request")
        assert exchange(b"\xff\xfe\n")["error"].startswith("not a JSON request")
        assert exchange(b'{"command": "\\u001b[31mred"}\n')["error"].startswith(
            "unknown command '\\x1b[31mred'"
        )
        assert "from 1 to 1000" in exchange(b'{"command": "add", "count": -1}\n')["error"]
        assert "from 1 to 1000" in exchange(b'{"command": "add", "count": true}\n')["error"]
        assert exchange(b"x" * 100_000)["error"] == "request too large (more than 4096 bytes)"
        # A request without its line break counts once the client has finished sending.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(path)
            sock.sendall(b'{"command": "status"}')
            sock.shutdown(socket.SHUT_WR)
            assert json.loads(sock.makefile("rb").readline())["result"]["pid"] == server.pid
        assert ctl.json("status")["workers"]["running"] == 2
    finally:
        idle.close()
    assert server.workers() == workers
    assert server.get("/")[0] == 200
    assert server.count(r"Traceback|\[ERROR\]") == 0, server.log


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A directory every user can enter (pytest's own are private to their owner)."""
    path = Path(tempfile.mkdtemp(prefix="greenserve-ctl-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the client as another user")
def test_another_user_is_denied(master, ctl, world_readable_dir):
    """Even where another user can reach the file, its mode (0600) keeps them out."""
    path = world_readable_dir / "app.ctl"
    master("mapp:app", "-w", "1", "--control-socket", str(path), env=ctl.env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # Imported as root (the interpreter lives under /root), then run as nobody.
    code = (
        "import locale, os, sys\n"  # what argparse's messages import lazily
        "from greenserve import ctl\n"
        "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
        f"sys.exit(ctl.run(['--socket', {str(path)!r}, 'status']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=str(ROOT),
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith(f"greenserve ctl: error: permission denied: {path} ")
    assert ctl.json("--socket", str(path), "status")["workers"]["wanted"] == 1


def test_explicit_socket_in_a_directory_others_can_write_is_refused(master, ctl, world_readable_dir):
    world_readable_dir.chmod(0o777)
    path = world_readable_dir / "app.ctl"
    server = master("mapp:app", "--control-socket", str(path), ready=None, env=ctl.env)
    assert server.wait(15) == 3, server.log
    assert "can be written by other users" in server.log
    assert not path.exists()
    assert server.count("Booting worker") == 0


def test_unsafe_default_directory_leaves_the_socket_off_but_serves(master, ctl):
    ctl.directory.mkdir(mode=0o755)
    ctl.directory.chmod(0o755)
    server = master("mapp:app", "-w", "1", env=ctl.env)
    server.wait_for(r"has mode 0755: .* the control socket is off")
    assert list(ctl.directory.iterdir()) == []
    assert server.get("/")[0] == 200


def test_usr2_new_master_takes_over_an_explicit_socket(master, ctl, tmp_path):
    path = tmp_path / "app.ctl"
    server = master("mapp:app", "-w", "1", "--control-socket", str(path), env=ctl.env)
    old_master = server.pid
    new_master = 0
    try:
        server.send_signal(signal.SIGUSR2)
        line = server.wait_for(r"started a new master \(pid \d+\)", timeout=5)
        new_master = int(line.rsplit("pid ", 1)[1].split(")")[0])
        server.wait_for(rf"\[{new_master}\] \[INFO\] Ready: 1 worker", timeout=15)
        assert ctl.json("--socket", str(path), "status")["pid"] == new_master
        # The old master stops; the socket file stays the new master's.
        server.send_signal(signal.SIGTERM)
        assert server.wait(10) == 0, server.log
        assert ctl.json("--socket", str(path), "status")["pid"] == new_master
        os.kill(new_master, signal.SIGTERM)
        assert wait_gone(new_master, 10), server.log
        assert not path.exists()
    finally:
        if new_master:
            with contextlib.suppress(ProcessLookupError):
                os.kill(new_master, signal.SIGKILL)
    assert old_master != new_master


def test_usr2_rollback_gives_the_socket_back_to_the_old_master(master, ctl, tmp_path):
    path = tmp_path / "app.ctl"
    server = master("mapp:app", "-w", "1", "--control-socket", str(path), env=ctl.env)
    server.send_signal(signal.SIGUSR2)
    line = server.wait_for(r"started a new master \(pid \d+\)", timeout=5)
    new_master = int(line.rsplit("pid ", 1)[1].split(")")[0])
    try:
        server.wait_for(rf"\[{new_master}\] \[INFO\] Ready: 1 worker", timeout=15)
        assert ctl.json("--socket", str(path), "status")["pid"] == new_master
        os.kill(new_master, signal.SIGTERM)  # the rollback
        server.wait_for(rf"Control socket: {path} is this master's again", timeout=15)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(new_master, signal.SIGKILL)
    status = ctl.json("--socket", str(path), "status")
    assert status["pid"] == server.pid
    assert status["new_master"] is None


def test_preloaded_master_answers_too(master, ctl, tmp_path):
    """--preload lets gevent patch the master's socket module: the control socket must not care."""
    server = master(
        "preload_app:app", "--preload", "-w", "2", env={**ctl.env, "IMPORT_LOG": str(tmp_path / "i")}
    )
    assert ctl.json("status")["pid"] == server.pid
    assert len(ctl.json("workers")["workers"]) == 2
    assert ctl("add", "--wait").stdout.endswith("3 workers of generation 1 ready\n")


def test_an_application_module_named_ctl_is_served_as_ctl_app(tmp_path):
    (tmp_path / "ctl.py").write_text("def app(environ, start_response):\n    return []\n")
    result = run_cli("--check-config", "ctl:app", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "configuration OK, ctl:app loads" in result.stdout
    help_text = run_cli("ctl", "--help", cwd=tmp_path)
    assert help_text.returncode == 0
    assert help_text.stdout.startswith("usage: greenserve ctl ")
    for command in ("status", "workers", "add", "remove", "reload", "reopen", "config"):
        assert f"\n    {command} " in help_text.stdout
