"""The real command with gunicorn's flags, and the first-hour mistakes a migrating user makes.

Each test runs ``python -m greenserve`` and asserts on what the user sees: the
exit code, the one line on stderr, the log, the responses.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import signal
import stat
import textwrap
from pathlib import Path

import pytest
import requests

from tests.conftest import APPS, run_cli, wait_until

DOC = "docs/migrating-from-gunicorn.md"
MASTER_APPS = APPS.parent / "master" / "apps"


def _write(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def _one_error_line(result, exit_code: int = 2) -> str:
    """The command failed with ``exit_code`` and said why in one line, before starting anything."""
    assert result.returncode == exit_code, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("greenserve: error: "), result.stderr
    assert result.stdout == ""
    return lines[0].removeprefix("greenserve: error: ")


# -- -k / --worker-class ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "level", "text"),
    [
        ("gevent", "INFO", "greenserve always runs gevent workers"),
        ("gunicorn.workers.ggevent.GeventWorker", "INFO", "greenserve always runs gevent workers"),
        ("sync", "WARNING", "ignored: greenserve runs each request in a greenlet, so a blocking"),
        ("uvicorn.workers.UvicornWorker", "WARNING", "serves ASGI applications itself"),
    ],
)
def test_worker_class_is_noted_and_the_server_starts(greenserve, value, level, text):
    server = greenserve("-k", value, "basic:app")
    notes = [line for line in server.lines if "worker class" in line]
    assert len(notes) == 1, server.log
    assert f"[{level}] worker class {value!r}" in notes[0]
    assert text in notes[0]
    if level == "WARNING":
        assert DOC in notes[0]
    assert requests.get(server.url, timeout=5).text == "Hello, world!"


def test_worker_class_from_a_gunicorn_style_config_file(greenserve, tmp_path):
    _write(tmp_path, "greenserve.conf.py", "worker_class = 'gthread'\n")
    server = greenserve("--chdir", str(APPS), "basic:app", cwd=tmp_path)
    assert re.search(r"\[WARNING\] worker class 'gthread' ignored: .* instead of a thread", server.log)


def test_no_worker_class_note_by_default(greenserve):
    server = greenserve("basic:app")
    assert "worker class" not in server.log


# -- gunicorn flags greenserve does not have ----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--threads", "4"],
            "greenserve runs each request in a greenlet: --threads has no equivalent; "
            "raise --worker-connections (concurrent connections per worker) instead",
        ),
        (
            ["--daemon"],
            "--daemon: greenserve does not daemonize: run it in the foreground under systemd, "
            "Docker or another supervisor (docs/deployment.md)",
        ),
        (["-D"], "-D: greenserve does not daemonize"),
        (["--ssl-version", "TLSv1_2"], "gunicorn ignores --ssl-version since version 21"),
        (["--ssl-version", "2"], "--tls-min-version 1.3 accepts TLS 1.3 only"),
        (["--log-syslog"], "--log-syslog: greenserve logs to files or stderr: let journald"),
    ],
)
def test_gunicorn_only_flag_fails_with_what_to_do_instead(args, message):
    error = _one_error_line(run_cli(*args, "basic:app"))
    assert message in error, error


# -- gunicorn's spellings ------------------------------------------------------------------------


def test_pid_is_pidfile(greenserve, tmp_path):
    pidfile = tmp_path / "gs.pid"
    server = greenserve("--pid", str(pidfile), "basic:app")
    assert pidfile.read_text() == f"{server.proc.pid}\n"


def test_log_file_is_error_logfile(greenserve, tmp_path):
    logfile = tmp_path / "error.log"
    greenserve("--log-file", str(logfile), "basic:app", ready=None)
    assert wait_until(lambda: logfile.exists() and "Ready: " in logfile.read_text(), 15)


def test_gunicorn_spellings_set_the_same_settings():
    result = run_cli(
        "--print-config",
        "--limit-request-field_size",
        "1000",
        "-m",
        "007",
        "--name",
        "shop",
        "--cert-reqs",
        "2",
        "--ca-certs",
        "ca.pem",
        "--no-sendfile",
        "--env",
        "A=1",
    )
    assert result.returncode == 0, result.stderr
    for line in (
        "limit_request_field_size = 1000",
        "umask = 0o007",
        "proc_name = 'shop'",
        "cert_reqs = 'required'",
        "sendfile = False",
        "raw_env = ['A=1']",
    ):
        assert re.search(rf"^{re.escape(line)} +# command line$", result.stdout, re.MULTILINE), line


def test_gunicorn_unlimited_limit_is_refused_clearly():
    error = _one_error_line(run_cli("--limit-request-line", "0", "basic:app"))
    assert "--limit-request-line: 0 (gunicorn's 'unlimited') is not accepted" in error


ENV_APP = """
    import os

    AT_IMPORT = os.environ.get("GS_HABIT", "unset")


    def app(environ, start_response):
        body = f"{AT_IMPORT}|{os.environ.get('GS_HABIT', 'unset')}|{os.environ.get('GS_OTHER')}".encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
"""


@pytest.mark.parametrize(
    "mode", [[], ["--preload"], ["--single-process"]], ids=["master", "preload", "single"]
)
def test_env_is_set_before_the_application_is_imported(greenserve, tmp_path, mode):
    _write(tmp_path, "envapp.py", ENV_APP)
    server = greenserve(*mode, "-e", "GS_HABIT=a b=c", "--env", "GS_OTHER=", "envapp:app", cwd=tmp_path)
    assert requests.get(server.url, timeout=5).text == "a b=c|a b=c|"


def test_env_refuses_an_item_without_a_value():
    error = _one_error_line(run_cli("-e", "NOVALUE", "basic:app"))
    assert error == "command line: --env: expected KEY=VALUE, got 'NOVALUE'"


CAPTURE_APP = """
    import sys

    print("printed at import", flush=True)


    def app(environ, start_response):
        print("printed in", environ["PATH_INFO"], flush=True)
        sys.stderr.write(f"written to stderr in {environ['PATH_INFO']}\\n")
        sys.stderr.flush()
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
"""


def test_capture_output_sends_stdout_and_stderr_to_the_error_log(greenserve, tmp_path):
    _write(tmp_path, "capture.py", CAPTURE_APP)
    logfile = tmp_path / "error.log"
    server = greenserve(
        "--capture-output", "--error-logfile", str(logfile), "capture:app", cwd=tmp_path, ready=None
    )
    assert wait_until(lambda: logfile.exists() and "Ready: " in logfile.read_text(), 15), server.log
    port = int(re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", logfile.read_text()).group(1))
    url = f"http://127.0.0.1:{port}"
    assert requests.get(url + "/one", timeout=5).text == "ok"
    assert wait_until(lambda: "written to stderr in /one" in logfile.read_text(), 5)
    text = logfile.read_text()
    assert "printed at import" in text
    assert "printed in /one" in text
    assert "printed" not in server.log  # nothing left on the process's own stdout

    # logrotate: the file is moved, USR1 reopens it, and the application's output follows.
    logfile.rename(tmp_path / "error.log.1")
    server.send_signal(signal.SIGUSR1)
    assert wait_until(logfile.exists, 5)

    def lands_in_the_new_file() -> bool:
        assert requests.get(url + "/two", timeout=5).status_code == 200
        return "printed in /two" in logfile.read_text() and "written to stderr in /two" in logfile.read_text()

    assert wait_until(lands_in_the_new_file, 10, 0.1), logfile.read_text()


# -- paste -------------------------------------------------------------------------------------


FAKE_PASTE_DEPLOY = """
    def loadapp(uri, name=None, relative_to=None, global_conf=None):
        def app(environ, start_response):
            body = repr((uri, global_conf)).encode()
            start_response("200 OK", [("Content-Length", str(len(body)))])
            return [body]
        return app
"""


def test_paste_serves_the_ini_files_application(greenserve, tmp_path):
    """``--paste`` loads the application with PasteDeploy's loadapp, as gunicorn does (here a stand-in)."""
    _write(tmp_path, "lib/paste/__init__.py", "")
    _write(tmp_path, "lib/paste/deploy.py", FAKE_PASTE_DEPLOY)
    ini = _write(tmp_path, "site/production.ini", "[app:main]\nuse = egg:x\n")
    server = greenserve(
        "--pythonpath",
        str(tmp_path / "lib"),
        "--paste",
        "site/production.ini#admin",
        "--paste-global",
        "debug=false",
        cwd=tmp_path,
    )
    assert requests.get(server.url, timeout=5).text == repr((f"config:{ini}#admin", {"debug": "false"}))


def test_paste_errors():
    assert _one_error_line(run_cli("--paste", "missing.ini")) == "--paste missing.ini: no such file"
    assert (
        _one_error_line(run_cli("--paste", "basic.py", "basic:app")) == "give either APP or --paste, not both"
    )
    assert _one_error_line(run_cli("--paste-global", "a=b", "basic:app")) == "--paste-global needs --paste"


# -- unknown flags, booleans, help --------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "meant"),
    [("--keepalive", "--keep-alive"), ("--limit-request-field-sise", "--limit-request-field-size")],
)
def test_unknown_flag_suggests_the_closest(flag, meant):
    error = _one_error_line(run_cli(flag, "3", "basic:app"))
    assert error == f"unrecognized option {flag!r} (did you mean {meant}?)"


def test_every_boolean_has_a_no_form():
    result = run_cli("--print-config", "--reload", "--no-reload", "--no-proxy-headers", "--no-preload")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^reload = False +# command line$", result.stdout, re.MULTILINE)
    assert re.search(r"^proxy_headers = False +# command line$", result.stdout, re.MULTILINE)
    help_text = run_cli("--help").stdout
    for pair in (
        "--reuse-port, --no-reuse-port",
        "--capture-output, --no-capture-output",
        "--sendfile, --no-sendfile",
    ):
        assert pair in help_text


# -- mistakes caught before anything starts -----------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--error-logfile", "{missing}/error.log"],
            "--error-logfile {missing}/error.log: directory {missing} does not exist",
        ),
        (
            ["--log-file", "{missing}/error.log"],
            "--error-logfile {missing}/error.log: directory {missing} does not exist",
        ),
        (
            ["--access-logfile", "{missing}/access.log"],
            "--access-logfile {missing}/access.log: directory {missing} does not exist",
        ),
        (["--pidfile", "{missing}/gs.pid"], "--pidfile {missing}/gs.pid: directory {missing} does not exist"),
        (["--pid", "{tmp}"], "--pidfile {tmp}: is a directory"),
        (["--worker-tmp-dir", "{missing}"], "--worker-tmp-dir {missing}: no such directory"),
        (["--chdir", "{missing}"], "--chdir {missing}: no such directory"),
        (["--chdir", "{tmp}/file"], "--chdir {tmp}/file: not a directory"),
        (["--user", "gs-no-such-user"], "--user gs-no-such-user: no such user"),
        (["--group", "gs-no-such-group"], "--group gs-no-such-group: no such group"),
        (["--initgroups"], "initgroups needs user: the groups are those of --user"),
    ],
)
@pytest.mark.parametrize("mode", [[], ["--single-process"]], ids=["master", "single"])
def test_startup_mistakes_are_one_line_and_exit_2(tmp_path, args, message, mode):
    (tmp_path / "file").write_text("")
    values = {"missing": str(tmp_path / "missing"), "tmp": str(tmp_path)}
    args = [arg.format(**values) for arg in args]
    result = run_cli(*mode, "-b", "127.0.0.1:0", *args, "basic:app")
    assert _one_error_line(result) == message.format(**values)


def test_access_logfile_is_not_checked_when_the_access_log_is_off(tmp_path):
    result = run_cli(
        "--no-access-log",
        "--access-logfile",
        str(tmp_path / "missing" / "a.log"),
        "--check-config",
        "basic:app",
    )
    assert result.returncode == 0, result.stderr


def test_no_application_is_one_line():
    error = _one_error_line(run_cli("-b", "127.0.0.1:0"))
    assert error == (
        "the application is required, e.g. 'greenserve myproject.wsgi:application' "
        "(greenserve --help lists every option)"
    )


def test_reload_with_a_missing_log_directory_keeps_the_configuration(greenserve, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    conf = _write(tmp_path, "greenserve.conf.py", f"access_logfile = {str(logs / 'access.log')!r}\n")
    server = greenserve("--chdir", str(APPS), "basic:app", cwd=tmp_path, quiet=False)
    conf.write_text(f"access_logfile = {str(tmp_path / 'gone' / 'access.log')!r}\n")
    start = len(server.lines)
    server.send_signal(signal.SIGHUP)
    line = server.wait_for("reload: ", start=start)
    assert "directory" in line and "does not exist; keeping the current configuration" in line
    assert requests.get(server.url, timeout=5).text == "Hello, world!"


# -- application specs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "hint"),
    [
        ("src/app.py", "run greenserve --chdir src app:app"),
        ("./main.py", "run greenserve main:application"),
    ],
)
def test_file_path_as_the_application(tmp_path, spec, hint):
    _write(tmp_path, "src/app.py", "app = None\n")
    _write(tmp_path, "main.py", "def application(environ, start_response):\n    return []\n")
    result = run_cli("-b", "127.0.0.1:0", spec, cwd=tmp_path)
    assert _one_error_line(result, exit_code=4) == f"{spec!r} is a file path, not a module: {hint}"


def test_module_without_application_names_its_app(greenserve, tmp_path):
    _write(tmp_path, "flaskish.py", "def app(environ, start_response):\n    return []\n")
    server = greenserve("flaskish", cwd=tmp_path, ready=None)
    assert server.wait(15) == 4
    assert "has no attribute 'application'" in server.log
    assert "it has 'app': try 'flaskish:app'" in server.log


def test_import_error_in_the_standard_library_names_the_users_line(greenserve, tmp_path):
    _write(tmp_path, "settings_app.py", "import os\n\nSECRET = os.environ['GS_NOT_SET_ANYWHERE']\n")
    server = greenserve("settings_app:app", cwd=tmp_path, ready=None)
    assert server.wait(15) == 4
    errors = [line for line in server.lines if "[ERROR]" in line]
    assert len(errors) == 1, server.log
    assert "KeyError: 'GS_NOT_SET_ANYWHERE' (settings_app.py:3)" in errors[0]
    assert "frozen" not in server.log


# -- where the configuration comes from ----------------------------------------------------------


def test_startup_names_the_configuration_files(greenserve, tmp_path):
    _write(tmp_path, "pyproject.toml", "[tool.greenserve]\nbacklog = 64\n")
    _write(tmp_path, "greenserve.conf.py", "keep_alive = 3\n")
    server = greenserve("--chdir", str(APPS), "basic:app", cwd=tmp_path)
    line = server.wait_for("Read settings from")
    assert line.endswith(
        f"Read settings from {tmp_path}/pyproject.toml [tool.greenserve], {tmp_path}/greenserve.conf.py"
    )


def test_print_config_names_each_source(tmp_path):
    _write(tmp_path, "pyproject.toml", "[tool.greenserve]\nbacklog = 64\nkeep-alive = 1\n")
    conf = _write(tmp_path, "greenserve.conf.py", "keep_alive = 3\nmax_requests = 10\n")
    env = {"GREENSERVE_MAX_REQUESTS": "20", "WEB_CONCURRENCY": "3"}
    result = run_cli("--print-config", "--graceful-timeout", "5", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    sources = {line.split(" = ", 1)[0]: line.rpartition("  # ")[2] for line in result.stdout.splitlines()}
    assert sources["backlog"] == f"{tmp_path}/pyproject.toml [tool.greenserve]"
    assert sources["keep_alive"] == str(conf)
    assert sources["max_requests"] == "GREENSERVE_MAX_REQUESTS"
    assert sources["workers"] == "WEB_CONCURRENCY"
    assert sources["graceful_timeout"] == "command line"
    assert sources["timeout"] == "default"


def test_gunicorn_leftovers_are_pointed_out(tmp_path):
    _write(tmp_path, "gunicorn.conf.py", "workers = 4\n")
    result = run_cli(
        "--chdir",
        str(APPS),
        "--check-config",
        "basic:app",
        cwd=tmp_path,
        env={"GUNICORN_CMD_ARGS": "--workers 4"},
    )
    assert result.returncode == 0, result.stderr
    assert "[WARNING] GUNICORN_CMD_ARGS is set and ignored" in result.stderr
    assert "[WARNING] ./gunicorn.conf.py is not read: greenserve reads greenserve.conf.py" in result.stderr


# -- --initgroups ------------------------------------------------------------------------------


def _user_with_a_supplementary_group() -> tuple[str, int, int]:
    if os.geteuid() != 0:
        pytest.skip("switching users needs root")
    for group in grp.getgrall():
        for member in group.gr_mem:
            try:
                entry = pwd.getpwnam(member)
            except KeyError:
                continue
            if entry.pw_gid != group.gr_gid:
                return member, entry.pw_gid, group.gr_gid
    pytest.skip("no user with a supplementary group on this system")


def _readable_by_anyone(path: Path) -> bool:
    current = path.resolve()
    if not current.stat().st_mode & stat.S_IROTH:
        return False
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in current.parents)


def _groups(pid: int) -> set[int]:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("Groups:"):
                return {int(gid) for gid in line.split()[1:]}
    return set()


@pytest.mark.parametrize("initgroups", [True, False], ids=["initgroups", "primary-only"])
def test_initgroups_gives_workers_the_users_groups(greenserve, initgroups):
    user, primary, supplementary = _user_with_a_supplementary_group()
    # An application that imports only what the worker imported before the switch: the
    # interpreter may live where other users cannot read it (pyenv under /root).
    if not _readable_by_anyone(MASTER_APPS / "mapp.py"):
        pytest.skip(f"{user} cannot read the test application in {MASTER_APPS}")
    flags = ["--initgroups"] if initgroups else []
    server = greenserve("--user", user, *flags, "--chdir", str(MASTER_APPS), "mapp:app")
    worker = int(requests.get(server.url, timeout=5).text)
    expected = {primary, supplementary} if initgroups else {primary}
    assert _groups(worker) == expected
