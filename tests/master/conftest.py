"""Fixtures for the master tests: real ``greenserve`` masters, their workers, steady load.

Every master binds port 0 and reports its address; every test's processes run
in their own session (process group), which is killed at teardown whatever
state the test left it in (USR2 leaves a second master in the same group).
Workers are found through ``/proc`` (children of the master's pid).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import GreenserveProcess, wait_until

APPS = Path(__file__).resolve().parent / "apps"
LOG_LINE = re.compile(r"^\[[^\]]+\] \[(?P<pid>\d+)\] \[(?P<level>\w+)\] (?P<message>.*)$")


# -- processes seen through /proc ----------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    """``(state, ppid)`` of a process, None when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def children(pid: int) -> list[int]:
    """Live (non-zombie) child processes of ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _stat(int(entry))
        if stat is not None and stat[1] == pid and stat[0] not in ("Z", "X"):
            found.append(int(entry))
    return sorted(found)


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def proc_ids(pid: int) -> tuple[int, int]:
    """Real ``(uid, gid)`` from ``/proc/PID/status``."""
    uid = gid = -1
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("Uid:"):
                uid = int(line.split()[1])
            elif line.startswith("Gid:"):
                gid = int(line.split()[1])
    return uid, gid


def fd_targets(pid: int) -> list[str]:
    targets = []
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return targets


def _tcp_table() -> list[tuple[int, int, str, int]]:
    """``(local port, remote port, state, inode)`` of every TCP socket, from ``/proc/net/tcp{,6}``."""
    rows = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(name) as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                local, remote = (int(address.rsplit(":", 1)[1], 16) for address in fields[1:3])
                rows.append((local, remote, fields[3], int(fields[9])))
    return rows


def listening(port: int) -> bool:
    """Some process still has a socket listening on ``port``."""
    return any(local == port and state == "0A" for local, _, state, _ in _tcp_table())


def accepted_by(pid: int, client: socket.socket) -> bool:
    """The server side of ``client``'s connection has been accepted by process ``pid``.

    Until it is, it waits in the listener's backlog with no socket inode.
    """
    server_port, client_port = client.getpeername()[1], client.getsockname()[1]
    inodes = {
        inode
        for local, remote, _, inode in _tcp_table()
        if (local, remote) == (server_port, client_port) and inode
    }
    return any(target == f"socket:[{inode}]" for target in fd_targets(pid) for inode in inodes)


def wait_gone(pid: int, timeout: float) -> bool:
    return wait_until(lambda: not alive(pid), timeout, 0.05)


def hook_records(path: Path, wanted: set[str], timeout: float = 10.0) -> list[dict]:
    """The JSON lines ``hooks_conf.py`` wrote to ``path``, once every hook in ``wanted`` has written one.

    Hooks run after the log lines that announce them (``when_ready`` after
    ``Ready:``): a test that reads at once may miss them. A line still being
    written (no newline yet) is left for the next read.
    """
    records: list[dict] = []

    def complete() -> bool:
        nonlocal records
        text = path.read_text() if path.exists() else ""
        records = [json.loads(line) for line in text.split("\n")[:-1]]
        return wanted <= {record["hook"] for record in records}

    assert wait_until(complete, timeout), f"hooks {sorted(wanted)} not all in {path}: {records}"
    return records


# -- a master -----------------------------------------------------------------------------


class Master(GreenserveProcess):
    """A ``greenserve`` master: its workers, its log, one-shot requests."""

    def _pump(self) -> None:
        try:
            super()._pump()
        finally:  # every writer (master, workers, a USR2 master) is gone
            assert self.proc is not None and self.proc.stdout is not None
            self.proc.stdout.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def workers(self, exclude: tuple[int, ...] = ()) -> list[int]:
        return [pid for pid in children(self.pid) if pid not in exclude]

    def wait_workers(
        self,
        predicate: Callable[[list[int]], bool],
        timeout: float = 10.0,
        master_pid: int | None = None,
        exclude: tuple[int, ...] = (),
    ) -> list[int]:
        """Poll the master's children until ``predicate(pids)``; returns them."""
        master_pid = master_pid or self.pid
        found: list[int] = []

        def check() -> bool:
            nonlocal found
            found = [pid for pid in children(master_pid) if pid not in exclude]
            return predicate(found)

        assert wait_until(check, timeout, 0.05), f"workers of {master_pid}: {found}\n{self.log}"
        return found

    def count(self, pattern: str, pid: int | None = None) -> int:
        regex = re.compile(pattern)
        with self._cond:
            lines = list(self.lines)
        return sum(1 for line in lines if regex.search(line) and (pid is None or f"[{pid}]" in line))

    def lines_from(self, pid: int) -> list[str]:
        with self._cond:
            return [line for line in self.lines if f"] [{pid}] [" in line]

    def get(self, path: str = "/", timeout: float = 5.0) -> tuple[int, bytes]:
        return http_get(self.address, path, timeout)

    def kill_group(self) -> None:
        """SIGKILL everything left in the master's process group (and reap the master)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


def http_get(address: tuple[str, int], path: str = "/", timeout: float = 5.0) -> tuple[int, bytes]:
    """One request on a fresh connection: ``(status, body)``."""
    conn = http.client.HTTPConnection(address[0], address[1], timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class _MasterFactory:
    def __init__(self) -> None:
        self.started: list[Master] = []

    def __call__(
        self,
        *args: str,
        ready: str | None = r"\] Ready: ",
        cwd: str | os.PathLike | None = None,
        env: dict | None = None,
        timeout: float = 15.0,
        pass_fds: tuple[int, ...] = (),
        bind: bool = True,
        graceful_timeout: float | None = 5.0,
        shim: str | None = None,
    ) -> Master:
        argv = list(args)
        if bind:
            argv = ["-b", "127.0.0.1:0", *argv]
        if not any("access-log" in a for a in argv):
            argv = ["--no-access-log", *argv]
        if graceful_timeout is not None and "--graceful-timeout" not in argv:
            argv = ["--graceful-timeout", str(graceful_timeout), *argv]
        master = Master(argv, cwd=cwd or APPS, env=env, pass_fds=pass_fds)
        if shim is not None:  # ``python -c SHIM ARGS``: the shim execs greenserve itself
            master.args[1:3] = ["-c", shim]
        self.started.append(master)
        return master.start(ready=ready, timeout=timeout)

    def cleanup(self) -> None:
        for master in self.started:
            try:
                code = master.stop(signal.SIGTERM, timeout=5)
                if code == -signal.SIGKILL:
                    tail = "\n".join(master.log.splitlines()[-30:])
                    warnings.warn(
                        f"master {master.pid} ignored SIGTERM for 5 s at teardown; log tail:\n{tail}",
                        stacklevel=1,
                    )
            finally:
                master.kill_group()


@pytest.fixture
def master() -> Iterator[_MasterFactory]:
    """Factory: ``master("mapp:app", "-w", "2")`` starts a master and waits for ``Ready:``.

    ``shim``: Python code run as ``python -c SHIM ARGS`` instead of
    ``python -m greenserve ARGS``, to prepare the process (e.g. systemd's
    environment) before it execs greenserve with the same pid.

    Adds ``-b 127.0.0.1:0``, ``--no-access-log`` and ``--graceful-timeout 5``
    unless told otherwise; serves from ``tests/master/apps``. Everything in the
    master's process group is killed after the test.
    """
    factory = _MasterFactory()
    try:
        yield factory
    finally:
        factory.cleanup()


# -- steady load ----------------------------------------------------------------------


class Load:
    """``threads`` clients looping ``GET path`` on loopback.

    By default each request opens a new connection. With ``keep_alive`` each
    client keeps one connection and sends its requests on it, opening a new
    one only when the server answers ``Connection: close`` (or after a failure).

    Every failure is recorded: connection refused or reset, the connection
    closed before a response, a timeout, a status other than 200. With
    ``refused_ok`` a refused connection is not a failure but the end of that
    client (the server has stopped listening). Bodies of ``/`` are worker pids:
    ``pids`` counts which workers answered. Stops by itself after ``max_seconds``.
    """

    def __init__(
        self,
        address: tuple[str, int],
        path: str = "/",
        threads: int = 4,
        pause: float = 0.01,
        timeout: float = 5.0,
        max_seconds: float = 40.0,
        keep_alive: bool = False,
        refused_ok: bool = False,
    ) -> None:
        self.address = address
        self.path = path
        self.pause = pause
        self.timeout = timeout
        self.max_seconds = max_seconds
        self.keep_alive = keep_alive
        self.refused_ok = refused_ok
        self.ok = 0
        #: ``(seconds since start, wall clock, what happened)`` per failed request.
        self.failures: list[tuple[float, str, str]] = []
        self.pids: Counter[int] = Counter()
        #: Per client (thread index): failed requests, and when the last success and failure began.
        self.client_failures: Counter[int] = Counter()
        self.last_ok: dict[int, float] = {}
        self.last_failure: dict[int, float] = {}
        #: Per client: the worker pid in its last ``/`` answer (the worker its connection is on).
        self.last_pid: dict[int, int] = {}
        #: Connections opened (keep-alive mode) and connections refused (``refused_ok``).
        self.connections = 0
        self.refused = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        run = self._run_keep_alive if keep_alive else self._run
        self._threads = [threading.Thread(target=run, args=(index,), daemon=True) for index in range(threads)]
        self.started = 0.0

    def __enter__(self) -> Load:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.ident is not None:
                thread.join(self.timeout + 2)

    def _run(self, index: int) -> None:
        deadline = self.started + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            began = time.monotonic()
            try:
                status, body = http_get(self.address, self.path, self.timeout)
            except ConnectionRefusedError as exc:
                if self._refused(index, began, exc):
                    return
            except Exception as exc:
                self._fail(index, began, repr(exc))
            else:
                self._answered(index, began, status, body)
            self._stop.wait(self.pause)

    def _run_keep_alive(self, index: int) -> None:
        deadline = self.started + self.max_seconds
        conn: http.client.HTTPConnection | None = None
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                began = time.monotonic()
                if conn is None:
                    conn = http.client.HTTPConnection(*self.address, timeout=self.timeout)
                    try:
                        conn.connect()
                    except ConnectionRefusedError as exc:
                        conn = None
                        if self._refused(index, began, exc):
                            return
                        self._stop.wait(self.pause)
                        continue
                    except OSError as exc:
                        conn = None
                        self._fail(index, began, f"connect: {exc!r}")
                        self._stop.wait(self.pause)
                        continue
                    with self._lock:
                        self.connections += 1
                try:
                    conn.request("GET", self.path)
                    response = conn.getresponse()
                    body = response.read()
                except Exception as exc:  # reset, EOF before the response, timeout
                    conn.close()
                    conn = None
                    self._fail(index, began, repr(exc))
                else:
                    self._answered(index, began, response.status, body)
                    if response.will_close:  # the server said Connection: close
                        conn.close()
                        conn = None
                self._stop.wait(self.pause)
        finally:
            if conn is not None:
                conn.close()

    def _answered(self, index: int, began: float, status: int, body: bytes) -> None:
        if status != 200:
            self._fail(index, began, f"status {status}: {body[:100]!r}")
            return
        with self._lock:
            self.ok += 1
            self.last_ok[index] = began
            if body.isdigit():
                self.pids[int(body)] += 1
                self.last_pid[index] = int(body)

    def _refused(self, index: int, began: float, exc: OSError) -> bool:
        """A refused connection: True when this client should stop (``refused_ok``)."""
        if not self.refused_ok:
            self._fail(index, began, repr(exc))
            return False
        with self._lock:
            self.refused += 1
        return True

    def _fail(self, index: int, began: float, what: str) -> None:
        wall = time.strftime("%H:%M:%S", time.localtime(time.time() - (time.monotonic() - began)))
        with self._lock:
            self.failures.append((round(began - self.started, 3), wall, what))
            self.client_failures[index] += 1
            self.last_failure[index] = began

    def alive(self) -> int:
        """Client threads still running."""
        return sum(1 for thread in self._threads if thread.is_alive())

    def wait_ok(self, more: int = 1, timeout: float = 5.0) -> None:
        """Wait until ``more`` further requests have succeeded."""
        target = self.ok + more
        assert wait_until(lambda: self.ok >= target, timeout), f"load stalled: {self.summary()}"

    def wait_pid(self, pids: set[int] | list[int], timeout: float = 5.0) -> None:
        """Wait until one of ``pids`` has answered a request."""
        wanted = set(pids)
        assert wait_until(lambda: wanted & set(self.pids), timeout), (
            f"none of {sorted(wanted)} answered: {self.summary()}"
        )

    def wait_every_client_ok_after(self, moment: float, timeout: float = 5.0) -> None:
        """Wait until every client has succeeded with a request begun after ``moment``
        and after its own last failure (it recovered)."""

        def recovered() -> bool:
            with self._lock:
                return all(
                    self.last_ok.get(index, 0.0) > max(moment, self.last_failure.get(index, 0.0))
                    for index in range(len(self._threads))
                )

        assert wait_until(recovered, timeout), f"not every client recovered: {self.summary()}"

    def summary(self) -> str:
        with self._lock:
            return (
                f"{self.ok} ok, {len(self.failures)} failed {self.failures[:10]}, "
                f"failed clients {dict(self.client_failures)}, answered by {dict(self.pids)}, "
                f"{self.connections} connections opened, {self.refused} refused"
            )


@pytest.fixture
def load() -> Iterator[Callable[..., Load]]:
    """Factory: ``with load(server.address) as traffic: ...``; stopped at teardown in any case."""
    started: list[Load] = []

    def make(address: tuple[str, int], **options: object) -> Load:
        traffic = Load(address, **options)  # type: ignore[arg-type]
        started.append(traffic)
        return traffic

    try:
        yield make
    finally:
        for traffic in started:
            traffic.stop()
