"""Fixtures that run the real ``greenserve`` command and talk to it.

Every server binds port 0 (or a Unix socket in a temporary directory) and
reports its address in its ``Listening at:`` log line; every process is
stopped with a timeout and killed if it does not stop.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "apps"
LISTENING = re.compile(r"Listening at: (?P<url>(?:https?://\S+:(?P<port>\d+))|unix:\S+)")


class GreenserveProcess:
    """A ``greenserve`` subprocess with its log captured line by line."""

    def __init__(
        self,
        args: list[str],
        *,
        cwd: str | os.PathLike | None = None,
        env: dict | None = None,
        pass_fds: tuple[int, ...] = (),
    ):
        self.args = [sys.executable, "-m", "greenserve", *args]
        self.cwd = str(cwd or APPS)
        self.env = {**_clean_environ(), "PYTHONUNBUFFERED": "1", **(env or {})}
        self.pass_fds = tuple(pass_fds)
        self.proc: subprocess.Popen | None = None
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.urls: list[str] = []
        #: True once the output pipe reached its end (every process writing to it is gone).
        self.eof = False

    # -- lifecycle ----------------------------------------------------------

    def start(self, ready: str | None = "serving", timeout: float = 15.0) -> GreenserveProcess:
        """Start and wait for the ``ready`` log line (None: do not wait)."""
        self.proc = subprocess.Popen(
            self.args,
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
            pass_fds=self.pass_fds,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        if ready is not None:
            self.wait_for(ready, timeout)
        return self

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                match = LISTENING.search(line)
                if match:
                    self.urls.append(match.group("url"))
                self._cond.notify_all()
        with self._cond:
            self.eof = True
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 10.0, start: int = 0) -> str:
        """The first log line (from index ``start``) matching ``pattern``.

        Fails at once when the output has ended without one (the process exited
        and everything it wrote has been read), else after ``timeout``.
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    if regex.search(line):
                        return line
                if self.eof:
                    code = self.proc.poll() if self.proc is not None else None
                    raise AssertionError(
                        f"output ended (exit code {code}) without a line matching {pattern!r}:\n{self.log}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no log line matching {pattern!r} in:\n{self.log}")
                self._cond.wait(min(left, 0.5))

    def wait_output(self, timeout: float = 5.0) -> bool:
        """Once the process has exited: wait until everything it wrote has been read.

        Its last lines may still be in the pipe when it has exited. The pump
        reads to the end of the pipe once every process of the group (workers
        too) is gone; a process left in the group (a master started by USR2)
        keeps the pipe open, and then this does not wait. True when the
        output has ended.
        """
        assert self.proc is not None
        if self.proc.poll() is None:
            return False
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            with self._cond:  # nobody left to write: the end of the output is near
                return self._cond.wait_for(lambda: self.eof, timeout)
        except PermissionError:
            pass
        return False

    def send_signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 15.0) -> int:
        """Wait for the process to exit, then for the rest of its output (see :meth:`wait_output`)."""
        assert self.proc is not None
        code = self.proc.wait(timeout)
        self.wait_output()
        return code

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Send ``signum``, wait; kill the whole process group if it does not exit."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signum)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            except ProcessLookupError:
                pass
        return self.proc.returncode

    # -- addresses and output ----------------------------------------------

    @property
    def log(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    @property
    def url(self) -> str:
        assert self.urls, f"no 'Listening at' line yet:\n{self.log}"
        return self.urls[0]

    @property
    def port(self) -> int:
        match = re.search(r":(\d+)$", self.url)
        assert match, self.url
        return int(match.group(1))

    @property
    def address(self) -> tuple[str, int]:
        host = re.match(r"https?://\[?([^\]/]+?)\]?:\d+$", self.url)
        assert host, self.url
        return host.group(1), self.port

    def connect(self, timeout: float = 5.0) -> socket.socket:
        """A raw TCP connection to the first listener."""
        return socket.create_connection(self.address, timeout=timeout)


def _clean_environ() -> dict[str, str]:
    """The test process's environment without settings that would leak into servers."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GREENSERVE_") and key not in ("PORT", "WEB_CONCURRENCY")
    }


class _Factory:
    """Starts servers and stops every one of them at teardown."""

    def __init__(self) -> None:
        self.started: list[GreenserveProcess] = []

    def __call__(
        self,
        *args: str,
        ready: str | None = "serving",
        cwd=None,
        env=None,
        timeout: float = 15.0,
        pass_fds: tuple[int, ...] = (),
        quiet: bool = True,
    ) -> GreenserveProcess:
        """``quiet=False``: do not add ``--no-access-log`` (test the default)."""
        argv = list(args)
        if not any(a in ("-b", "--bind") or a.startswith("--bind=") for a in argv):
            argv = ["-b", "127.0.0.1:0", *argv]
        if quiet and not any("access-log" in a for a in argv):
            argv = ["--no-access-log", *argv]
        server = GreenserveProcess(argv, cwd=cwd, env=env, pass_fds=pass_fds)
        self.started.append(server)
        return server.start(ready=ready, timeout=timeout)

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()


@pytest.fixture
def greenserve() -> Iterator:
    """Factory: ``greenserve("--http", "h11", "basic:app")`` starts a server on port 0.

    ``-b 127.0.0.1:0`` and ``--no-access-log`` are added unless the arguments
    bind or mention the access log themselves. Stopped after the test.
    """
    factory = _Factory()
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def module_greenserve() -> Iterator:
    """Like :func:`greenserve`, but the servers live for the whole test module.

    For tests that only send requests and do not change the server's state.
    """
    factory = _Factory()
    yield factory
    factory.stop_all()


def run_cli(*args: str, cwd=None, env=None, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """Run ``python -m greenserve ARGS`` to completion (for commands that exit)."""
    return subprocess.run(
        [sys.executable, "-m", "greenserve", *args],
        cwd=str(cwd or APPS),
        env={**_clean_environ(), "PYTHONUNBUFFERED": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def raw_exchange(sock: socket.socket, data: bytes, timeout: float = 3.0, until_close: bool = True) -> bytes:
    """Send raw bytes and read until the server closes (or ``timeout`` of silence)."""
    sock.sendall(data)
    sock.settimeout(timeout)
    chunks = []
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if not until_close:
                break
    except (TimeoutError, ConnectionResetError):
        pass
    return b"".join(chunks)


def read_until_close(sock: socket.socket, timeout: float = 5.0) -> tuple[bytes, bool]:
    """Everything the server sends until it closes: ``(data, closed)``.

    ``closed`` is False when ``timeout`` seconds passed without the close.
    A reset counts as a close.
    """
    deadline = time.monotonic() + timeout
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"".join(chunks), False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return b"".join(chunks), False
        except (ConnectionResetError, BrokenPipeError):
            return b"".join(chunks), True
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)


def recv_until(sock: socket.socket, marker: bytes, timeout: float = 5.0) -> bytes:
    """Read until ``marker`` has been received (or fail after ``timeout``)."""
    deadline = time.monotonic() + timeout
    data = b""
    while marker not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{marker!r} not received within {timeout} s; got {data!r}")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before {marker!r}; got {data!r}")
        data += chunk
    return data


class _NoCloseFile:
    """A buffered socket file that ``http.client`` cannot close between responses."""

    def __init__(self, raw) -> None:
        self._raw = raw

    def __getattr__(self, name: str):
        return getattr(self._raw, name)

    def close(self) -> None:
        pass


class ResponseReader:
    """Reads successive HTTP responses from one raw socket (pipelining, keep-alive).

    ``http.client`` parses each response; the buffered file is shared, so bytes
    of the next response read ahead are not lost.
    """

    def __init__(self, sock: socket.socket, timeout: float = 5.0) -> None:
        sock.settimeout(timeout)
        self.sock = sock
        self.file = _NoCloseFile(sock.makefile("rb"))

    def makefile(self, *args, **kwargs):  # what HTTPResponse asks its "socket" for
        return self.file

    def read(self, method: str = "GET") -> http.client.HTTPResponse:
        """The next response, with its body read into ``.body``."""
        response = http.client.HTTPResponse(self, method=method)  # type: ignore[arg-type]
        response.begin()
        response.body = response.read()  # type: ignore[attr-defined]
        return response

    def at_eof(self) -> bool:
        """True when the server has closed the connection (nothing more to read)."""
        try:
            return self.file.read(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


def request_bytes(
    method: str = "GET",
    target: str = "/",
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    body: bytes = b"",
    version: str = "HTTP/1.1",
    host: str = "localhost",
) -> bytes:
    """One request, serialised by hand (Content-Length added for a body)."""
    items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    names = {name.lower() for name, _ in items}
    if host and "host" not in names:
        items.insert(0, ("Host", host))
    if body and "content-length" not in names and "transfer-encoding" not in names:
        items.append(("Content-Length", str(len(body))))
    head = f"{method} {target} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in items) + "\r\n"
    return head.encode("latin-1") + body


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
