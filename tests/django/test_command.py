"""``python manage.py greenserve``: a real project, served by the real command.

Each server is the command run as a subprocess in a copy of a project made by
``django-admin startproject`` (see conftest.py), bound to ``127.0.0.1:0`` or a
port found free a moment before, and stopped after the test.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import time

import pytest
import requests

from tests.conftest import LISTENING, recv_until, wait_until
from tests.django.conftest import ADMIN_PASSWORD, ADMIN_USER, free_port, run_manage

TIMEOUT = 10  # seconds, for every HTTP request


def get(server, path: str, **kwargs) -> requests.Response:
    return requests.get(server.url + path, timeout=TIMEOUT, **kwargs)


@pytest.fixture(scope="module")
def debug_server(module_manage_greenserve):
    """The default command in DEBUG (minus the reloader), shared by read-mostly tests."""
    return module_manage_greenserve("--noreload")


# -- the admin, static files, CSRF -------------------------------------------------


def test_port_zero_reports_the_real_port(debug_server):
    server = debug_server
    line = server.wait_for("Listening at:")
    match = LISTENING.search(line)
    assert match and match.group("url").startswith("http://127.0.0.1:"), line
    assert server.port != 0
    assert get(server, "/hello/").text == "hello v1"


def test_admin_login_page_renders(debug_server):
    server = debug_server
    response = get(server, "/admin/login/")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert '<form action="/admin/login/" method="post" id="login-form">' in response.text
    assert 'name="csrfmiddlewaretoken"' in response.text
    assert 'name="username"' in response.text and 'name="password"' in response.text
    # /admin/ redirects anonymous users to the login page.
    response = get(server, "/admin/", allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login/")


def test_static_files_served_in_debug(debug_server):
    server = debug_server
    response = get(server, "/static/admin/css/base.css")
    assert response.status_code == 200, response.text[:500]
    assert response.headers["Content-Type"].startswith("text/css")
    assert b"body" in response.content and len(response.content) > 1000


def test_static_files_not_served_with_nostatic(manage_greenserve):
    server = manage_greenserve("--noreload", "--nostatic")
    assert "static=False" in server.wait_for("Ready:")
    assert get(server, "/static/admin/css/base.css").status_code == 404
    assert get(server, "/admin/login/").status_code == 200


def test_debug_false_no_static_no_reload(manage_greenserve):
    server = manage_greenserve(env={"DJANGO_DEBUG": "0"})
    assert get(server, "/static/admin/css/base.css").status_code == 404
    response = get(server, "/admin/login/")
    assert response.status_code == 200
    assert "login-form" in response.text
    # Not in DEBUG: no reloader by default.
    assert "Reloading on changes" not in server.log


def test_admin_login_with_csrf(debug_server):
    server = debug_server
    with requests.Session() as session:
        page = session.get(server.url + "/admin/login/", timeout=TIMEOUT)
        assert page.status_code == 200
        token = session.cookies.get("csrftoken")
        assert token, page.headers
        form_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert form_token, page.text[:2000]

        # Without the token: 403 from the CSRF middleware.
        refused = requests.post(
            server.url + "/admin/login/",
            data={"username": ADMIN_USER, "password": ADMIN_PASSWORD},
            timeout=TIMEOUT,
        )
        assert refused.status_code == 403

        response = session.post(
            server.url + "/admin/login/?next=/admin/",
            data={
                "csrfmiddlewaretoken": form_token.group(1),
                "username": ADMIN_USER,
                "password": ADMIN_PASSWORD,
                "next": "/admin/",
            },
            timeout=TIMEOUT,
        )
        assert response.status_code == 200, response.text[:2000]
        assert response.url == server.url + "/admin/"
        assert [r.status_code for r in response.history] == [302]
        assert "Site administration" in response.text
        assert session.cookies.get("sessionid")
        # Logged in: a model page of the admin works too.
        users = session.get(server.url + "/admin/auth/user/", timeout=TIMEOUT)
        assert users.status_code == 200
        assert ADMIN_USER in users.text


# -- addrport ---------------------------------------------------------------------


def test_addrport_port_only(manage_greenserve):
    port = free_port()
    server = manage_greenserve("--noreload", addrport=str(port))
    assert server.url == f"http://127.0.0.1:{port}"
    assert get(server, "/hello/").text == "hello v1"


def test_addrport_host_and_port(manage_greenserve):
    port = free_port()
    server = manage_greenserve("--noreload", addrport=f"127.0.0.1:{port}")
    assert server.url == f"http://127.0.0.1:{port}"
    assert get(server, "/hello/").status_code == 200


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")
def test_addrport_ipv6(manage_greenserve):
    port = free_port(socket.AF_INET6, "::1")
    server = manage_greenserve("--noreload", addrport=f"[::1]:{port}")
    assert server.url == f"http://[::1]:{port}"
    assert server.address == ("::1", port)
    assert get(server, "/hello/").text == "hello v1"


def test_bind_option_instead_of_addrport(manage_greenserve):
    server = manage_greenserve("--bind", "127.0.0.1:0", "--noreload")
    assert get(server, "/hello/").status_code == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["notaport"], '"notaport" is not a valid port number or address:port pair'),
        ([":8000"], "is not a valid port number or address:port pair"),
        (["127.0.0.1:0", "--bind", "127.0.0.1:0"], "give either addrport or --bind, not both"),
        (["127.0.0.1:99999"], "invalid port"),
    ],
    ids=["word", "no-host", "addrport-and-bind", "port-out-of-range"],
)
def test_bad_addrport(django_project, args, message):
    result = run_manage(django_project, "greenserve", *args, "--noreload", timeout=30)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Listening at" not in result.stderr + result.stdout


# -- workers, options ---------------------------------------------------------------


def test_two_workers(manage_greenserve):
    server = manage_greenserve("--workers", "2", "--noreload")
    assert "Ready: 2 worker(s)" in server.wait_for("Ready:")
    booted = {int(pid) for pid in re.findall(r"Booting worker (\d+)", server.log)}
    assert len(booted) == 2, server.log
    pids = set()
    for _ in range(20):
        pids.add(get(server, "/pid/", headers={"Connection": "close"}).json()["pid"])
    assert pids <= booted
    assert server.proc.pid not in pids  # the master serves nothing


def test_keep_alive_passes_through(manage_greenserve):
    """``--keep-alive 1``: an idle keep-alive connection is closed after about 1 s (default 5 s)."""
    server = manage_greenserve("--noreload", "--keep-alive", "1")
    with server.connect() as sock:
        sock.sendall(b"GET /hello/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data = recv_until(sock, b"hello v1")
        assert data.startswith(b"HTTP/1.1 200"), data
        answered = time.monotonic()
        sock.settimeout(4)
        assert sock.recv(1) == b""  # closed by the server
        idle = time.monotonic() - answered
    assert 0.5 < idle < 3, idle


def test_access_logformat_passes_through(manage_greenserve):
    server = manage_greenserve("--noreload", "--access-logformat", "DJACCESS %(r)s %(s)s")
    assert get(server, "/hello/").status_code == 200
    server.wait_for(r"DJACCESS GET /hello/ HTTP/1\.1 200", timeout=5)


def test_no_access_log(manage_greenserve):
    server = manage_greenserve("--noreload", "--no-access-log")
    start = len(server.lines)
    with requests.Session() as session:  # one connection: its requests are logged in order
        assert session.get(server.url + "/hello/", timeout=TIMEOUT).status_code == 200
        assert session.get(server.url + "/admin/login/", timeout=TIMEOUT).status_code == 200
        # Once the app's line is in, the access lines of the requests before it would be too.
        assert session.get(server.url + "/log/?marker=barrier", timeout=TIMEOUT).text == "logged"
    server.wait_for(r"app says barrier$", start=start)
    assert "GET /hello/" not in server.log
    assert "/admin/login/" not in server.log


def test_server_header_passes_through(manage_greenserve):
    server = manage_greenserve("--noreload", "--server-header", "X")
    assert get(server, "/hello/").headers["Server"] == "X"


def test_help_lists_greenserve_options(django_project):
    result = run_manage(django_project, "greenserve", "--help", timeout=30)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for option in (
        "addrport",
        "--asgi",
        "--noreload",
        "--nostatic",
        "--config",
        "--workers",
        "--worker-connections",
        "--keep-alive",
        "--access-logformat",
        "--server-header",
        "--max-body-size",
        "--settings",  # Django's own options are still there
    ):
        assert option in out, option


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["--workers", "0"], r"workers.*at least 1"),
        (["--keep-alive", "abc"], r"keep[_-]alive.*expected a number"),
        (["--http", "bogus"], r"http.*(auto, h11, httptools|invalid choice)"),
        (["--max-body-size", "lots"], r"max[_-]body[_-]size"),
        (["--frobnicate"], r"unrecognized arguments: --frobnicate"),
    ],
    ids=["workers-0", "keep-alive-word", "http-choice", "size", "unknown-option"],
)
def test_bad_option_value(django_project, args, pattern):
    result = run_manage(django_project, "greenserve", "127.0.0.1:0", "--noreload", *args, timeout=30)
    assert result.returncode != 0
    assert re.search(pattern, result.stderr), result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "Listening at" not in result.stderr + result.stdout


# -- the master is a clean interpreter --------------------------------------------------

HOOK_CONFIG = """
import json as _json
import os as _os
import sys as _sys

_OUT = {out!r}


def on_starting(arbiter):
    modules = sorted(
        name
        for name in _sys.modules
        if name.split(".")[0] in ("django", "asyncio", "gevent", "mysite", "demo")
    )
    with open(_OUT + ".tmp", "w") as handle:  # whole or not at all: the test polls for the file
        _json.dump({{"pid": _os.getpid(), "modules": modules}}, handle)
    _os.replace(_OUT + ".tmp", _OUT)
"""


def test_master_imports_neither_django_nor_asyncio(manage_greenserve, tmp_path):
    out = tmp_path / "master-modules.json"
    config = tmp_path / "hooks.conf.py"
    config.write_text(HOOK_CONFIG.format(out=str(out)))
    server = manage_greenserve("--noreload", "--config", str(config))
    assert wait_until(out.exists, timeout=5), server.log
    report = json.loads(out.read_text())
    assert report["modules"] == []
    # The command replaced itself with the master (exec): same process.
    assert report["pid"] == server.proc.pid
    # ...and the workers it forks do serve Django.
    assert get(server, "/admin/login/").status_code == 200


def test_sigterm_to_the_command_stops_the_server(manage_greenserve):
    server = manage_greenserve("--noreload")
    assert get(server, "/hello/").status_code == 200
    assert server.stop(signal.SIGTERM, timeout=15) == 0
    assert "Shutting down" in server.log


def test_verbosity_2_shows_the_greenserve_command(manage_greenserve):
    server = manage_greenserve("-v", "2", "--workers", "1")
    line = server.wait_for(r"^exec ")
    assert " -m greenserve " in line
    assert "--reload" in line  # DEBUG is on: reload by default
    assert "--bind 127.0.0.1:0" in line
    assert "greenserve.contrib.django.entry:wsgi(static=True)" in line


# -- the other configuration sources ------------------------------------------------------

RECORD_CONFIG = """
import json as _json
import os as _os

{settings}


def on_starting(arbiter):
    # Record what the master resolved, then leave before any socket is bound.
    config = arbiter.config
    with open({out!r}, "w") as handle:
        _json.dump({{"bind": list(config.bind), "reload": config.reload, "workers": config.workers}}, handle)
    _os._exit(0)
"""


def _resolved(django_project, tmp_path, settings: str, *args: str, env: dict | None = None) -> dict:
    """What the master resolved from the command (no addrport) plus a config file and ``env``."""
    out = tmp_path / "resolved.json"
    config = tmp_path / "record.conf.py"
    config.write_text(RECORD_CONFIG.format(settings=settings, out=str(out)))
    result = run_manage(django_project, "greenserve", "--config", str(config), *args, env=env, timeout=30)
    assert result.returncode == 0 and out.exists(), result.stderr
    return json.loads(out.read_text())


def test_config_file_settings_apply(django_project, tmp_path):
    resolved = _resolved(django_project, tmp_path, "workers = 3")
    assert resolved["workers"] == 3
    assert resolved["bind"] == ["127.0.0.1:8000"]  # runserver's default address when nothing is set
    assert resolved["reload"] is True  # DEBUG


def test_config_file_bind_is_not_overridden_by_the_default_address(django_project, tmp_path):
    """greenserve's precedence is defaults < config file < environment < command line; the
    command's own default address (127.0.0.1:8000) must not beat a bind from the config file."""
    resolved = _resolved(django_project, tmp_path, 'bind = ["127.0.0.1:0"]')
    assert resolved["bind"] == ["127.0.0.1:0"]


def test_environment_bind_is_not_overridden_by_the_default_address(django_project, tmp_path):
    resolved = _resolved(django_project, tmp_path, "", env={"GREENSERVE_BIND": "127.0.0.1:0"})
    assert resolved["bind"] == ["127.0.0.1:0"]


def test_config_file_reload_false_is_not_overridden_in_debug(django_project, tmp_path):
    resolved = _resolved(django_project, tmp_path, "reload = False")
    assert resolved["reload"] is False
