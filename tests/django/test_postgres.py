"""PostgreSQL under ``manage.py greenserve``: psycopg 3 waits cooperatively.

A throwaway cluster is started with the server binaries of Debian's
``postgresql`` package (``/usr/lib/postgresql/*/bin``) on a free TCP port and
a Unix socket directory of its own, then stopped with ``pg_ctl stop -m
immediate``. PostgreSQL refuses to run as root: when the tests run as root,
the cluster runs as the ``postgres`` user, in a directory made under the
system temporary directory and handed to that user (pytest's ``tmp_path``
lives below a root-only ``/tmp/pytest-of-root``, which ``postgres`` cannot
enter; a short path also keeps the socket path under its 107-byte limit).

The proof: 100 concurrent requests to a view running ``SELECT pg_sleep(0.2)``
on **one** worker finish in about a second, not 20 s. psycopg 3 (3.1.14+)
notices that gevent patched ``select`` and then waits with
``psycopg.waiting.wait_poll`` on gevent's cooperative ``select.poll``
instead of its C ``wait_c``, which would block the whole worker; a control
run that forces ``wait_c`` shows the difference.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import wait_until
from tests.django.conftest import concurrent_get, describe, free_port

psycopg = pytest.importorskip(
    "psycopg", reason="psycopg 3 is not installed (pip install 'psycopg[binary]>=3.1.14')"
)

REQUESTS = 100
PG_SLEEP = 0.2  # seconds, in the /pg-sleep/ view
MAX_CONNECTIONS = 200
DATABASE = "greenserve"
SUPERUSER = "postgres"
SERVE = ("--settings", "mysite.settings_pg", "--noreload", "--no-access-log")


def _version_key(path: str) -> tuple[int, ...]:
    match = re.search(r"/postgresql/([\d.]+)/bin", path)
    return tuple(int(part) for part in match.group(1).split(".")) if match else (0,)


def find_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/N/bin`` with initdb and pg_ctl (or initdb on PATH)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        bindir = Path(candidate)
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "pg_isready", "createdb")):
            return bindir
    return None


class Cluster:
    """A PostgreSQL cluster in a temporary directory, for one test module."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.as_postgres = os.geteuid() == 0
        self.base = Path(tempfile.mkdtemp(prefix="gs-pg-"))
        self.data = self.base / "data"
        self.logfile = self.base / "postgres.log"
        self.port = 0
        if self.as_postgres:
            import pwd

            account = pwd.getpwnam("postgres")
            os.chown(self.base, account.pw_uid, account.pw_gid)
        self.base.chmod(0o700)

    # -- commands ---------------------------------------------------------------

    def _server_command(self, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        """A server-side command, as ``postgres`` when we are root."""
        if self.as_postgres:
            if shutil.which("runuser"):
                args = ["runuser", "-u", "postgres", "--", *args]
            else:
                args = ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(args)]
        return subprocess.run(
            args, cwd=str(self.base), capture_output=True, text=True, timeout=timeout, check=False
        )

    def _check(self, result: subprocess.CompletedProcess) -> None:
        assert result.returncode == 0, (
            f"{result.args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n{self.log()}"
        )

    def log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> None:
        self._check(
            self._server_command(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-sync",
                ]
            )
        )
        for _attempt in range(3):  # a free port may be taken before the postmaster binds it
            self.port = free_port()
            options = " ".join(
                [
                    "-c listen_addresses=127.0.0.1",
                    f"-c port={self.port}",
                    f"-c unix_socket_directories={self.base}",
                    f"-c max_connections={MAX_CONNECTIONS}",
                    "-c shared_buffers=32MB",
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                ]
            )
            result = self._server_command(
                [
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.logfile),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
                timeout=90,
            )
            if result.returncode == 0:
                break
        else:
            self._check(result)
        self.wait_ready()
        created = subprocess.run(
            [str(self.bindir / "createdb"), *self.client_args(), DATABASE],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        self._check(created)

    def client_args(self) -> list[str]:
        return ["-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER]

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            result = subprocess.run(
                [str(self.bindir / "pg_isready"), *self.client_args(), "-t", "2"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"PostgreSQL not ready after {timeout} s:\n{self.log()}")
            time.sleep(0.2)

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                result = self._server_command(
                    [str(self.bindir / "pg_ctl"), "-D", str(self.data), "stop", "-m", "immediate", "-w"],
                    timeout=60,
                )
                if result.returncode != 0:
                    self._kill_postmaster()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass

    @property
    def env(self) -> dict[str, str]:
        """What mysite/settings_pg.py reads (libpq reads the same names)."""
        return {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.port),
            "PGUSER": SUPERUSER,
            "PGDATABASE": DATABASE,
        }


@pytest.fixture(scope="module")
def postgres() -> Iterator[Cluster]:
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (apt-get install -y postgresql)")
    if os.geteuid() == 0:
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root, and there is no 'postgres' user to run PostgreSQL as")
    cluster = Cluster(bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def pg_get(server, path: str) -> requests.Response:
    return requests.get(server.url + path, timeout=30, headers={"Connection": "close"})


def open_connections(server) -> int:
    """Client connections to the test database, counted from a fresh request (itself included)."""
    response = pg_get(server, "/pg-connections/")
    assert response.status_code == 200, response.text[:2000]
    return response.json()["connections"]


# -- the proof -----------------------------------------------------------------------------


def test_100_concurrent_pg_sleeps_on_one_worker(manage_greenserve, postgres):
    server = manage_greenserve(*SERVE, "--workers", "1", env=postgres.env)
    warm = pg_get(server, "/pg-sleep/")
    assert warm.status_code == 200, warm.text[:3000]
    # psycopg chose a wait function that goes through gevent, not its C wait_c.
    wait = warm.json()["wait"]
    assert wait in ("wait_poll", "wait_select", "wait_selector", "wait_epoll"), (
        f"psycopg {psycopg.__version__} waits with {wait}, which blocks the worker: "
        "psycopg >= 3.1.14 detects gevent's patching and waits cooperatively"
    )

    responses, elapsed = concurrent_get(server.url + "/pg-sleep/", REQUESTS)
    assert all(r.status_code == 200 for r in responses), describe(responses)
    bodies = [r.json() for r in responses]
    assert len({body["pid"] for body in bodies}) == 1  # one worker did it all
    # CONN_MAX_AGE=0: every request (greenlet) had a connection of its own, at the same time.
    assert len({body["backend_pid"] for body in bodies}) == REQUESTS
    serial = REQUESTS * PG_SLEEP
    print(f"{REQUESTS} concurrent pg_sleep({PG_SLEEP}) on one worker: {elapsed:.2f} s (serial: {serial} s)")
    assert elapsed < 5, (
        f"{REQUESTS} concurrent pg_sleep({PG_SLEEP}) took {elapsed:.1f} s (serial: {serial} s)"
    )

    # ...and Django closed each one at the end of its request.
    assert wait_until(lambda: open_connections(server) == 1, timeout=10, interval=0.2)


def test_control_blocking_wait_c_serialises_requests(manage_greenserve, postgres):
    """Forcing psycopg's C wait function (what psycopg < 3.1.14 used under gevent) blocks
    the worker for each query: the same measurement then shows serial execution."""
    env = {**postgres.env, "PSYCOPG_WAIT_FUNC": "wait_c"}
    server = manage_greenserve(*SERVE, "--workers", "1", env=env)
    assert pg_get(server, "/pg-sleep/").json()["wait"] == "wait_c"
    count = 10
    responses, elapsed = concurrent_get(server.url + "/pg-sleep/", count)
    assert all(r.status_code == 200 for r in responses), describe(responses)
    assert elapsed >= 0.9 * count * PG_SLEEP, f"{count} blocking pg_sleeps took only {elapsed:.2f} s"


# -- connection management advice (docs/django.md), measured ------------------------------


def test_pool_bounds_the_connections(manage_greenserve, postgres):
    """``OPTIONS["pool"]`` (Django 5.1+, psycopg_pool): 100 greenlets share 10 connections."""
    pytest.importorskip("psycopg_pool", reason="psycopg_pool is not installed (pip install 'psycopg[pool]')")
    import django

    if django.VERSION < (5, 1):
        pytest.skip("connection pools need Django 5.1+")
    pool_size = 10
    env = {**postgres.env, "DJANGO_PG_POOL": str(pool_size)}
    server = manage_greenserve(*SERVE, "--workers", "1", env=env)
    assert pg_get(server, "/pg-sleep/").status_code == 200

    responses, elapsed = concurrent_get(server.url + "/pg-sleep/", REQUESTS)
    assert all(r.status_code == 200 for r in responses), describe(responses)
    backends = {r.json()["backend_pid"] for r in responses}
    assert len(backends) <= pool_size
    waves = REQUESTS / pool_size
    # The requests queue for the 10 connections: about waves x 0.2 s, not 0.2 s, not 20 s.
    assert 0.9 * waves * PG_SLEEP <= elapsed < 20, elapsed
    assert open_connections(server) <= pool_size


def test_persistent_connections_belong_to_greenlets(manage_greenserve, postgres):
    """``CONN_MAX_AGE > 0``: a connection is kept per greenlet ("thread"), i.e. per client
    connection. Requests on one keep-alive connection reuse it; once the client connection
    ends, its database connection is neither reused nor closed until Python's cyclic garbage
    collector frees it, so open connections pile up with fresh client connections."""
    env = {**postgres.env, "DJANGO_CONN_MAX_AGE": "60"}
    server = manage_greenserve(*SERVE, "--workers", "1", env=env)
    with requests.Session() as session:
        backends = {
            session.get(server.url + "/pg-sleep/", timeout=30).json()["backend_pid"] for _ in range(3)
        }
    assert len(backends) == 1  # one client connection, one greenlet, one database connection

    count = 30
    responses, _ = concurrent_get(server.url + "/pg-sleep/", count)
    assert all(r.status_code == 200 for r in responses), describe(responses)
    assert len({r.json()["backend_pid"] for r in responses}) == count
    # Their greenlets are gone; most of their database connections are still open.
    still_open = open_connections(server)
    print(f"CONN_MAX_AGE=60: {still_open} connections open after {count} finished requests")
    assert still_open > count // 3, still_open
