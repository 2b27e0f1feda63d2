"""The ``greenserve`` command line: help, version, configuration sources, app specs, errors."""

from __future__ import annotations

import ast
import re
import socket
import time

import pytest
import requests

from greenserve import __version__
from tests.conftest import APPS, run_cli, wait_until


def _settings(stdout: str) -> dict[str, str]:
    """``--print-config`` output -> ``{name: repr of value}`` (read as Python, comments dropped)."""
    settings = {}
    for statement in ast.parse(stdout).body:
        assert isinstance(statement, ast.Assign), ast.dump(statement)
        name = statement.targets[0]
        assert isinstance(name, ast.Name)
        settings[name.id] = repr(ast.literal_eval(statement.value))
    return settings


def _sources(stdout: str) -> dict[str, str]:
    """``--print-config`` output -> ``{name: the source named in its trailing comment}``."""
    return {
        line.split(" = ", 1)[0]: line.rpartition("  # ")[2]
        for line in stdout.splitlines()
        if not line.startswith("#")
    }


def test_help_lists_flags():
    result = run_cli("--help")
    assert result.returncode == 0
    for flag in (
        "--bind",
        "--workers",
        "--keep-alive",
        "--header-timeout",
        "--client-timeout",
        "--graceful-timeout",
        "--max-body-size",
        "--limit-request-line",
        "--access-logfile",
        "--access-logformat",
        "--certfile",
        "--http",
        "--print-config",
        "--check-config",
        "--version",
    ):
        assert flag in result.stdout, flag
    assert "GREENSERVE_KEEP_ALIVE" in result.stdout


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"greenserve {__version__}"


def test_print_config_defaults():
    result = run_cli("--print-config")
    assert result.returncode == 0, result.stderr
    settings = _settings(result.stdout)
    assert settings["keep_alive"] == "5.0"
    assert settings["bind"] == "['127.0.0.1:8000']"
    assert settings["server_header"] == "'greenserve'"


def test_print_config_is_a_valid_config_file(tmp_path):
    result = run_cli("--print-config", "--keep-alive", "3", "--umask", "027", "-b", "unix:/tmp/x.sock")
    assert result.returncode == 0, result.stderr
    config = tmp_path / "greenserve.conf.py"
    config.write_text(result.stdout)
    again = run_cli("--print-config", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert _settings(again.stdout) == _settings(result.stdout)
    assert _sources(result.stdout)["keep_alive"] == "command line"
    assert set(_sources(again.stdout).values()) == {str(config)}  # every value now from the file


def test_print_config_precedence(tmp_path):
    """CLI > GREENSERVE_* env > greenserve.conf.py > pyproject [tool.greenserve] > defaults."""
    (tmp_path / "pyproject.toml").write_text(
        "[tool.greenserve]\n"
        "backlog = 11\n"
        "limit-request-fields = 12\n"
        "limit_request_line = 1000\n"
        "keep_alive = 1.5\n"
        "server_header = 'from-pyproject'\n"
    )
    (tmp_path / "greenserve.conf.py").write_text(
        "import os  # modules are not settings\n"
        "_helper = 3  # private names are not settings\n"
        "limit_request_fields = 22\n"
        "limit_request_line = 2000\n"
        "keep_alive = 2.5\n"
    )
    env = {"GREENSERVE_LIMIT_REQUEST_LINE": "3000", "GREENSERVE_KEEP_ALIVE": "3.5"}
    result = run_cli("--print-config", "--keep-alive", "4.5", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    settings = _settings(result.stdout)
    assert settings["server_header"] == "'from-pyproject'"  # only in pyproject
    assert settings["backlog"] == "11"  # pyproject
    assert settings["limit_request_fields"] == "22"  # config file beats pyproject
    assert settings["limit_request_line"] == "3000"  # env beats config file
    assert settings["keep_alive"] == "4.5"  # command line beats everything


def test_print_config_explicit_config_file(tmp_path):
    (tmp_path / "greenserve.conf.py").write_text("backlog = 5\n")
    other = tmp_path / "other.py"
    other.write_text("backlog = 7\n")
    assert _settings(run_cli("--print-config", cwd=tmp_path).stdout)["backlog"] == "5"
    result = run_cli("--print-config", "--config", str(other), cwd=tmp_path)
    assert _settings(result.stdout)["backlog"] == "7"
    result = run_cli("--print-config", cwd=tmp_path, env={"GREENSERVE_CONFIG": str(other)})
    assert _settings(result.stdout)["backlog"] == "7"


def test_print_config_lists_from_env():
    result = run_cli("--print-config", env={"GREENSERVE_BIND": "127.0.0.1:1,unix:/tmp/a.sock"})
    assert result.returncode == 0, result.stderr
    assert _settings(result.stdout)["bind"] == "['127.0.0.1:1', 'unix:/tmp/a.sock']"


@pytest.mark.parametrize(
    ("where", "content", "name"),
    [
        ("env", "GREENSERVE_KEEPALIVE", "keep_alive"),
        ("conf", "keepalive = 3\n", "keep_alive"),
        ("pyproject", "[tool.greenserve]\nmax-body = '1M'\n", "max_body_size"),
    ],
)
def test_unknown_setting_is_an_error_with_a_suggestion(tmp_path, where, content, name):
    env = {}
    if where == "env":
        env = {content: "3"}
    elif where == "conf":
        (tmp_path / "greenserve.conf.py").write_text(content)
    else:
        (tmp_path / "pyproject.toml").write_text(content)
    result = run_cli("--print-config", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "did you mean" in result.stderr
    assert repr(name) in result.stderr


def test_bad_value_names_its_source():
    result = run_cli("--print-config", env={"GREENSERVE_KEEP_ALIVE": "soon"})
    assert result.returncode == 2
    assert "GREENSERVE_KEEP_ALIVE" in result.stderr  # named as the user set it
    assert "soon" in result.stderr


def test_unknown_flag():
    result = run_cli("--keepalive", "3", "basic:app")
    assert result.returncode == 2
    assert "--keepalive" in result.stderr


def test_missing_app():
    result = run_cli("-b", "127.0.0.1:0")
    assert result.returncode == 2
    assert "application is required" in result.stderr


def test_check_config_ok():
    result = run_cli("--check-config", "basic:app")
    assert result.returncode == 0, result.stderr
    assert "basic:app" in result.stdout


@pytest.mark.parametrize(
    ("spec", "cause"),
    [
        ("broken:app", "this_module_does_not_exist"),
        ("no_such_module:app", "no_such_module"),
        ("basic:missing", "missing"),
        ("basic:create_app(oops)", "literal"),
    ],
)
def test_check_config_failure(spec, cause):
    result = run_cli("--check-config", spec)
    assert result.returncode == 4
    assert cause in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("mode", [[], ["--single-process"]], ids=["master", "single"])
def test_app_import_failure_exits_4_quickly_with_one_line(greenserve, mode):
    started = time.monotonic()
    server = greenserve(*mode, "broken:app", ready=None)
    code = server.wait(timeout=15)
    assert code == 4
    assert time.monotonic() - started < 10
    assert "Traceback" not in server.log
    errors = [line for line in server.lines if "[ERROR]" in line]
    assert errors, server.log
    for line in errors:  # each error is one line that names the cause
        assert "broken" in line
        assert "this_module_does_not_exist" in line
    # Not a respawn loop: one worker tried once.
    assert len([line for line in server.lines if "Booting worker" in line]) <= 1


def test_app_that_is_not_callable(greenserve):
    server = greenserve("probe:CALLS", ready=None)
    assert server.wait(timeout=15) == 4
    assert "not a callable" in server.log


def _get(server, path="/"):
    return requests.get(server.url + path, timeout=5)


def test_spec_module_attr(greenserve):
    assert _get(greenserve("basic:app")).text == "Hello, world!"


def test_spec_module_alone_uses_application(greenserve):
    assert _get(greenserve("basic")).text == "Hello, world!"


def test_spec_factory_with_literal_arguments(greenserve):
    server = greenserve("basic:create_app('Hi', punctuation='?')")
    assert _get(server).text == "Hi?"


def test_chdir(greenserve, tmp_path):
    server = greenserve("--chdir", str(APPS), "basic:app", cwd=tmp_path)
    assert _get(server).text == "Hello, world!"


def test_pythonpath(greenserve, tmp_path):
    package = tmp_path / "elsewhere"
    package.mkdir()
    (package / "faraway.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'from afar']\n"
    )
    server = greenserve("--pythonpath", str(package), "faraway:app", cwd=tmp_path)
    assert _get(server).text == "from afar"


@pytest.mark.parametrize(
    ("bind", "message", "code"),
    [
        ("127.0.0.1:99999", "invalid port", 2),
        ("::1:8000", "brackets", 2),
        ("fd://x", "fd://N", 2),
        ("unix:", "needs a path", 2),
    ],
)
def test_bad_bind_is_a_clear_error(bind, message, code):
    result = run_cli("-b", bind, "basic:app")
    assert result.returncode == code, result.stderr
    output = result.stderr + result.stdout
    assert message in output
    assert "Traceback" not in output


MODES = {"master": [], "single": ["--single-process"]}


@pytest.mark.parametrize("mode", list(MODES))
def test_unresolvable_bind_host(mode):
    result = run_cli(*MODES[mode], "-b", "no-such-host.invalid:0", "basic:app")
    assert result.returncode == 3, result.stderr
    assert "cannot resolve" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("mode", list(MODES))
def test_bind_address_in_use(mode):
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        result = run_cli(*MODES[mode], "-b", f"127.0.0.1:{port}", "basic:app")
    finally:
        holder.close()
    assert result.returncode == 3
    assert re.search(r"already in use", result.stderr), result.stderr
    assert "Traceback" not in result.stderr


def test_several_workers_serve(greenserve):
    """``--workers 2`` runs under the pre-fork master (its own tests live elsewhere)."""
    server = greenserve("--workers", "2", "probe:app")
    assert wait_until(lambda: sum("serving" in line for line in server.lines) >= 2, 15), server.log
    pid = requests.get(server.url + "/pid", timeout=5).text
    assert pid != str(server.proc.pid)
    assert server.stop() == 0
