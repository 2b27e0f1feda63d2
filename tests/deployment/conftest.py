"""Tier (c) behind real load balancers: nginx and HAProxy in front of ``greenserve`` masters.

The proxies are the Debian/Ubuntu packages (``nginx``, ``haproxy``); tests
that need one skip when it is not installed. Each proxy runs in the
foreground as a child of the test, with every path it writes (pid, logs,
temporary files) in the test's temporary directory, and listens on a socket
the test bound to port 0 and hands over as an inherited descriptor (nginx's
``NGINX`` variable, HAProxy's ``bind fd@N``): no fixed port, and no window in
which another process could take the port. Every process runs in its own
session and is stopped with a timeout, then killed with its whole group.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.master.conftest import master  # noqa: F401 - the masters' fixture, used here too

APPS = Path(__file__).resolve().parent / "apps"
#: Where Debian puts daemons: not on an ordinary user's PATH.
SBIN = "/usr/local/sbin:/usr/sbin:/sbin"


def program_path(name: str) -> str | None:
    """The path of ``name``, on PATH or in an sbin directory; None when it is not installed."""
    return shutil.which(name) or shutil.which(name, path=SBIN)


def requires(name: str) -> pytest.MarkDecorator:
    """Skip a test module, before it starts any server, when ``name`` is not installed."""
    return pytest.mark.skipif(
        program_path(name) is None, reason=f"{name} is not installed (apt-get install {name})"
    )


def find_program(name: str) -> str:
    """The path of ``name``, or skip the test."""
    path = program_path(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install {name})")
    return path


def listening_socket(host: str = "127.0.0.1") -> socket.socket:
    """A TCP socket bound to a free port and listening, inheritable by a child process."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class Proxy:
    """A load balancer in the foreground, its output in ``DIR/output.log``."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.directory = directory
        self.proc: subprocess.Popen | None = None
        self.address: tuple[str, int] = ("", 0)

    def start(self, argv: list[str], listeners: list[socket.socket], env: dict | None = None) -> None:
        self.address = listeners[0].getsockname()[:2]
        with open(self.directory / "output.log", "wb") as output:
            self.proc = subprocess.Popen(
                argv,
                cwd=self.directory,
                env={**os.environ, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                pass_fds=tuple(sock.fileno() for sock in listeners),
                start_new_session=True,
            )
        for sock in listeners:  # the proxy holds them now
            sock.close()

    @property
    def log(self) -> str:
        """Everything the proxy wrote (its output and its error log, if it has one)."""
        parts = []
        for name in ("output.log", "error.log"):
            with contextlib.suppress(OSError):
                text = (self.directory / name).read_text(errors="replace")
                parts.append(f"--- {self.name} {name} ---\n{text}")
        return "\n".join(parts)

    def get(self, path: str = "/", timeout: float = 5.0, port: int | None = None) -> tuple[int, bytes]:
        """One request on a new connection."""
        conn = http.client.HTTPConnection(self.address[0], port or self.address[1], timeout=timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def wait_serving(self, path: str = "/", timeout: float = 10.0, port: int | None = None) -> None:
        """Until a request through the proxy succeeds (the socket listens from the start: no refusal)."""

        def answered() -> bool:
            assert self.proc is not None
            assert self.proc.poll() is None, f"{self.name} exited ({self.proc.returncode}):\n{self.log}"
            with contextlib.suppress(OSError, http.client.HTTPException):
                return self.get(path, timeout=2, port=port)[0] == 200
            return False

        assert wait_until(answered, timeout, 0.1), f"{self.name} does not answer:\n{self.log}"

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 5.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signum)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # anything it left behind (nginx's workers)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


#: What nginx needs around the test's ``http`` block to run unprivileged in one directory:
#: its pid file, error log and the temporary files of every module, all under the prefix.
NGINX_MAIN = """\
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{
    worker_connections 1024;
}}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
{http}
}}
"""


class ProxyFactory:
    """Starts nginx and HAProxy processes in ``tmp_path``; stops every one at teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[Proxy] = []

    def _directory(self, name: str) -> Path:
        directory = self.tmp_path / f"{name}-{len(self.started)}"
        directory.mkdir()
        return directory

    def nginx(self, http_block: str) -> Proxy:
        """nginx with ``http_block`` in its ``http`` context; ``{listen}`` there becomes its address."""
        program = find_program("nginx")
        proxy = Proxy("nginx", self._directory("nginx"))
        sock = listening_socket()
        host, port = sock.getsockname()[:2]
        config = proxy.directory / "nginx.conf"
        body = http_block.replace("{listen}", f"{host}:{port}")
        config.write_text(NGINX_MAIN.format(dir=proxy.directory, http=body))
        error_log = proxy.directory / "error.log"  # -e: not even the compiled-in path at startup
        argv = [program, "-p", str(proxy.directory), "-c", str(config), "-e", str(error_log)]
        argv += ["-g", "daemon off;"]
        self.started.append(proxy)
        # NGINX="fd;": the listening sockets nginx takes over instead of binding (its binary upgrade).
        proxy.start(argv, [sock], env={"NGINX": f"{sock.fileno()};"})
        return proxy

    def haproxy(self, config_template: str, frontends: int = 1) -> tuple[Proxy, list[int]]:
        """HAProxy with ``config_template``: ``{fd0}``, ``{fd1}``... are its listeners' descriptors.

        Returns the proxy and the port of each listener, in order.
        """
        program = find_program("haproxy")
        proxy = Proxy("haproxy", self._directory("haproxy"))
        socks = [listening_socket() for _ in range(frontends)]
        ports = [sock.getsockname()[1] for sock in socks]
        config = proxy.directory / "haproxy.cfg"
        config.write_text(config_template.format(**{f"fd{i}": sock.fileno() for i, sock in enumerate(socks)}))
        self.started.append(proxy)
        proxy.start([program, "-f", str(config), "-db"], socks)
        return proxy, ports

    def stop_all(self) -> None:
        for proxy in self.started:
            proxy.stop()


@pytest.fixture
def proxies(tmp_path: Path) -> Iterator[ProxyFactory]:
    """Factory for nginx and HAProxy (``proxies.nginx(...)``, ``proxies.haproxy(...)``)."""
    factory = ProxyFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()


class KeepAliveLoad:
    """Client threads, each with one keep-alive connection to the proxy, looping ``GET path``.

    A client that fails (an exception or a status other than 200) records
    it and opens a new connection. Bodies are ``INSTANCE PID``: ``instances``
    and ``pids`` count who answered. Stops by itself after ``max_seconds``.
    """

    def __init__(
        self, address: tuple[str, int], path: str = "/", threads: int = 4, max_seconds: float = 40.0
    ) -> None:
        self.address = address
        self.path = path
        self.max_seconds = max_seconds
        self.ok = 0
        #: ``(seconds since start, what happened)`` for each failed request.
        self.failures: list[tuple[float, str]] = []
        self.instances: Counter[str] = Counter()
        self.pids: Counter[tuple[str, int]] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        self.started = 0.0

    def __enter__(self) -> KeepAliveLoad:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.ident is not None:
                thread.join(10)

    def _run(self) -> None:
        deadline = self.started + self.max_seconds
        conn = http.client.HTTPConnection(*self.address, timeout=5)
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                began = time.monotonic() - self.started
                try:
                    conn.request("GET", self.path)
                    response = conn.getresponse()
                    body = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    self._fail(began, repr(exc))
                    conn.close()  # the next request opens a new connection
                    continue
                if response.status != 200:
                    self._fail(began, f"status {response.status}: {body[:200]!r}")
                    continue
                instance, _, pid = body.decode().partition(" ")
                with self._lock:
                    self.ok += 1
                    self.instances[instance] += 1
                    self.pids[(instance, int(pid))] += 1
        finally:
            conn.close()

    def _fail(self, began: float, what: str) -> None:
        with self._lock:
            self.failures.append((round(began, 3), what))

    def answered_by(self, instance: str, pids: set[int] | list[int] | None = None) -> int:
        """How many requests ``instance`` has answered (in one of ``pids``, if given)."""
        with self._lock:
            return sum(
                count
                for (name, pid), count in self.pids.items()
                if name == instance and (pids is None or pid in pids)
            )

    def wait_answered(
        self,
        instance: str,
        pids: set[int] | list[int] | None = None,
        count: int = 1,
        timeout: float = 10.0,
    ) -> None:
        """Until ``instance`` (its processes ``pids``, if given) has answered ``count`` requests."""
        assert wait_until(lambda: self.answered_by(instance, pids) >= count, timeout, 0.02), (
            f"{instance} {sorted(pids or ())} did not answer {count} requests within {timeout} s: "
            f"{self.summary()}"
        )

    def run_for(self, seconds: float) -> None:
        """Keep the load going until it has run ``seconds`` in all (the clients stop by themselves later)."""
        assert seconds < self.max_seconds
        self._stop.wait(max(0.0, self.started + seconds - time.monotonic()))

    def wait_ok(self, more: int, timeout: float = 10.0) -> None:
        target = self.ok + more
        assert wait_until(lambda: self.ok >= target, timeout, 0.02), f"load stalled: {self.summary()}"

    def summary(self) -> str:
        with self._lock:
            return (
                f"{self.ok} ok, {len(self.failures)} failed {self.failures[:10]}, "
                f"by instance {dict(self.instances)}, by process {dict(self.pids)}"
            )
