"""A real Django project, served by ``python manage.py greenserve``.

``django_template`` builds one project per test session (``startproject``,
a small ``demo`` app, ``migrate``, a superuser); ``django_project`` gives each
test its own copy, so tests may edit files and write to the database.
``manage_greenserve`` starts ``python manage.py greenserve ...`` in a copy
and stops every server it started at teardown.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import GreenserveProcess, _clean_environ

ADMIN_USER = "admin"
ADMIN_PASSWORD = "greenserve-secret-1"  # a throwaway test user

#: The settings appended to the generated settings.py. DEBUG comes from the
#: environment so one project serves both modes.
SETTINGS_TAIL = """

# --- added by the greenserve tests ---------------------------------------------
import os  # noqa: E402

INSTALLED_APPS = ["greenserve.contrib.django", "demo", *INSTALLED_APPS]
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["*"]
"""

#: Settings for the PostgreSQL tests: everything from settings.py, another database.
SETTINGS_PG = """
import os

from .settings import *  # noqa: F403

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ["PGDATABASE"],
        "USER": os.environ["PGUSER"],
        "HOST": os.environ["PGHOST"],
        "PORT": os.environ["PGPORT"],
        "CONN_MAX_AGE": int(os.environ.get("DJANGO_CONN_MAX_AGE", "0")),
        "OPTIONS": {},
    }
}
if os.environ.get("DJANGO_PG_POOL"):
    # Django 5.1+: a psycopg_pool.ConnectionPool per worker process.
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": 1,
        "max_size": int(os.environ["DJANGO_PG_POOL"]),
        "timeout": 30,
    }
"""

VIEWS = '''
import os
import sys
import time
import uuid

from django.contrib.auth.models import Group, User
from django.db import connection
from django.http import HttpResponse, JsonResponse

VERSION = "v1"


def hello(request):
    return HttpResponse(f"hello {VERSION}")


def pid(request):
    return JsonResponse({"pid": os.getpid()})


def sleep(request):
    time.sleep(0.5)
    return HttpResponse("slept")


def log(request):
    """A line on stderr, after whatever the worker logged for the earlier requests on the connection."""
    print(f"app says {request.GET.get('marker', 'hello')}", file=sys.stderr, flush=True)
    return HttpResponse("logged")


def db(request):
    """Create one row and read it back; count the users."""
    name = uuid.uuid4().hex
    Group.objects.create(name=name)
    found = Group.objects.get(name=name)
    return JsonResponse({"group": found.name, "users": User.objects.count()})


def pg_sleep(request):
    """0.2 s inside PostgreSQL; reports which connection ran it."""
    import psycopg.waiting

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(0.2), pg_backend_pid()")
        _, backend_pid = cursor.fetchone()
    return JsonResponse(
        {"backend_pid": backend_pid, "wait": psycopg.waiting.wait.__name__, "pid": os.getpid()}
    )


def pg_connections(request):
    """Client backends connected to this database right now (this one included)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND backend_type = 'client backend'"
        )
        (count,) = cursor.fetchone()
    return JsonResponse({"connections": count})
'''

URLS_TAIL = """

# --- added by the greenserve tests ---------------------------------------------
from demo import views  # noqa: E402

urlpatterns += [
    path("hello/", views.hello),
    path("pid/", views.pid),
    path("sleep/", views.sleep),
    path("log/", views.log),
    path("db/", views.db),
    path("pg-sleep/", views.pg_sleep),
    path("pg-connections/", views.pg_connections),
]
"""


#: Variables of the test run's own environment that would change the project under test.
_PROJECT_VARIABLES = ("DJANGO_SETTINGS_MODULE", "DJANGO_DEBUG", "DJANGO_CONN_MAX_AGE", "DJANGO_PG_POOL")


def project_environ(extra: dict | None = None) -> dict[str, str]:
    """The environment for the project's processes: clean, plus ``extra``."""
    environ = {
        key: value
        for key, value in _clean_environ().items()
        if key not in _PROJECT_VARIABLES and not key.startswith(("PG", "PSYCOPG_"))
    }
    return {**environ, "PYTHONUNBUFFERED": "1", **(extra or {})}


def _run(args: list[str], cwd: Path, env: dict | None = None, timeout: float = 120) -> str:
    result = subprocess.run(
        args,
        cwd=str(cwd),
        env=project_environ(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result.stdout


def build_project(root: Path) -> Path:
    """``django-admin startproject mysite`` in ``root``, plus the demo app; not migrated."""
    root.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "django", "startproject", "mysite", str(root)], cwd=root)
    settings = root / "mysite" / "settings.py"
    settings.write_text(settings.read_text() + SETTINGS_TAIL)
    (root / "mysite" / "settings_pg.py").write_text(SETTINGS_PG.lstrip())
    urls = root / "mysite" / "urls.py"
    urls.write_text(urls.read_text() + URLS_TAIL)
    demo = root / "demo"
    demo.mkdir()
    (demo / "__init__.py").write_text("")
    (demo / "views.py").write_text(VIEWS.lstrip())
    return root


@pytest.fixture(scope="session")
def django_template(tmp_path_factory) -> Path:
    """The migrated project with a superuser, built once per session (per xdist worker)."""
    pytest.importorskip("django", reason="Django is not installed (pip install 'django>=5.1')")
    root = build_project(tmp_path_factory.mktemp("django") / "mysite")
    manage = [sys.executable, "manage.py"]
    _run([*manage, "migrate", "--noinput", "-v", "0"], cwd=root)
    _run(
        [*manage, "createsuperuser", "--noinput", "--username", ADMIN_USER, "--email", "a@example.com"],
        cwd=root,
        env={"DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD},
    )
    return root


@pytest.fixture
def django_project(django_template: Path, tmp_path: Path) -> Path:
    """A private copy of the migrated project (files and database)."""
    return Path(
        shutil.copytree(django_template, tmp_path / "mysite", ignore=shutil.ignore_patterns("__pycache__"))
    )


class ManageGreenserve(GreenserveProcess):
    """``python manage.py greenserve ARGS`` (the command execs the greenserve master in place)."""

    def __init__(self, args: list[str], *, cwd: Path, env: dict | None = None):
        super().__init__([], cwd=cwd)
        self.env = project_environ(env)
        self.args = [sys.executable, "manage.py", "greenserve", *args]


class _ManageFactory:
    def __init__(self, project: Path) -> None:
        self.project = project
        self.started: list[ManageGreenserve] = []

    def __call__(
        self,
        *args: str,
        addrport: str | None = "127.0.0.1:0",
        ready: str | None = r"Ready: \d+ worker",
        env: dict | None = None,
        cwd: Path | None = None,
        timeout: float = 30.0,
    ) -> ManageGreenserve:
        """Start and wait for ``ready``; ``addrport`` goes first (None: none, e.g. with --bind)."""
        argv = list(args)
        binds = any(a in ("-b", "--bind") or a.startswith("--bind=") for a in argv)
        if addrport is not None and not binds:
            argv = [addrport, *argv]
        server = ManageGreenserve(argv, cwd=cwd or self.project, env=env)
        self.started.append(server)
        return server.start(ready=ready, timeout=timeout)

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()


@pytest.fixture
def manage_greenserve(django_project: Path) -> Iterator[_ManageFactory]:
    """Factory: ``manage_greenserve("--workers", "1")`` runs the command in ``django_project``."""
    factory = _ManageFactory(django_project)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def module_manage_greenserve(django_template: Path, tmp_path_factory) -> Iterator[_ManageFactory]:
    """Like :func:`manage_greenserve`, for servers shared by a module's read-mostly tests."""
    project = Path(
        shutil.copytree(
            django_template,
            tmp_path_factory.mktemp("shared") / "mysite",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    )
    factory = _ManageFactory(project)
    yield factory
    factory.stop_all()


def run_manage(
    project: Path, *args: str, env: dict | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """``python manage.py ARGS`` to completion (for commands that exit).

    In its own process group: if it does not exit in time (a server that
    started when it should have refused), the whole group is killed.
    """
    argv = [sys.executable, "manage.py", *args]
    with subprocess.Popen(
        argv,
        cwd=str(project),
        env=project_environ(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate(timeout=10)
            raise AssertionError(f"{argv} did not exit within {timeout} s:\n{stdout}\n{stderr}") from None
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


def free_port(family: int = socket.AF_INET, host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (bind port 0, read it, close)."""
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def concurrent_get(url: str, count: int, timeout: float = 60.0) -> tuple[list[requests.Response], float]:
    """``count`` GETs at once, one thread and one connection each: ``(responses, seconds)``."""
    ready = concurrent.futures.ThreadPoolExecutor(max_workers=count)

    def get(_: int) -> requests.Response:
        return requests.get(url, timeout=timeout, headers={"Connection": "close"})

    with ready as pool:
        started = time.monotonic()
        responses = list(pool.map(get, range(count)))
        elapsed = time.monotonic() - started
    return responses, elapsed


def describe(responses: list[requests.Response]) -> str:
    statuses: dict[int, int] = {}
    for response in responses:
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    bad = next((r for r in responses if r.status_code != 200), None)
    detail = "" if bad is None else "\nfirst failure:\n" + textwrap.shorten(bad.text, 2000)
    return f"statuses {statuses}{detail}"
