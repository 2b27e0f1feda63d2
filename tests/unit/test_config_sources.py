"""Unit tests for greenserve.config_sources: where settings come from, and in which order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from greenserve import config as config_module
from greenserve.config import Config
from greenserve.config_sources import (
    COMMAND_LINE,
    DEFAULT,
    DEFAULT_CONFIG_FILE,
    gather,
    read_pyproject,
    read_python_config,
    resolve,
    resolve_with_sources,
    setting_sources,
)
from greenserve.errors import ConfigError

HOOKS = tuple(getattr(config_module, "HOOKS", ()))


@pytest.fixture(autouse=True)
def _clean_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    monkeypatch.delenv("PORT", raising=False)


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


# -- Python configuration files --------------------------------------------------------


def test_read_python_config(tmp_path: Path) -> None:
    path = write(
        tmp_path / "conf.py",
        "import os\n"
        "import os.path as _osp\n"
        "from collections import abc\n"
        "_helper = 3\n"
        "def _compute():\n"
        "    return _helper * 2\n"
        "workers = _compute()\n"
        "bind = ['127.0.0.1:0', 'unix:/tmp/x.sock']\n"
        "keep_alive = 1.5\n"
        "access_log = False\n"
        "umask = 0o007\n",
    )
    assert read_python_config(path) == {
        "workers": 6,
        "bind": ["127.0.0.1:0", "unix:/tmp/x.sock"],
        "keep_alive": 1.5,
        "access_log": False,
        "umask": 7,
    }


def test_read_python_config_unknown_setting_suggests(tmp_path: Path) -> None:
    path = write(tmp_path / "conf.py", "worker = 2\n")
    with pytest.raises(ConfigError) as info:
        read_python_config(path)
    message = str(info.value)
    assert path in message
    assert "unknown setting 'worker'" in message
    assert "did you mean 'workers'?" in message
    assert "prefix helper names with '_'" in message


def test_read_python_config_imported_names_are_not_settings(tmp_path: Path) -> None:
    # `from x import y` brings tools, not settings (e.g. greenserve.interfaces for hooks).
    path = write(
        tmp_path / "conf.py",
        "from os.path import join\nfrom greenserve.interfaces import IPreRequest\n"
        "bind = [join('unix:/tmp', 'x.sock')]\n",
    )
    assert read_python_config(path) == {"bind": ["unix:/tmp/x.sock"]}


def test_read_python_config_public_helper_defined_here_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "conf.py", "def helper():\n    return 1\nworkers = helper()\n")
    with pytest.raises(ConfigError, match="unknown setting 'helper'"):
        read_python_config(path)


def test_read_python_config_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_python_config(str(tmp_path / "nope.py"))


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("raise RuntimeError('boom')\n", "RuntimeError: boom"),
        ("workers = = 2\n", "SyntaxError"),
        ("import no_such_module_for_greenserve\n", "ModuleNotFoundError"),
        ("workers = 1 / 0\n", "ZeroDivisionError"),
    ],
)
def test_read_python_config_failing_file(tmp_path: Path, text: str, error: str) -> None:
    path = write(tmp_path / "conf.py", text)
    with pytest.raises(ConfigError) as info:
        read_python_config(path)
    assert path in str(info.value)
    assert error in str(info.value)


def test_read_python_config_runs_as_its_own_module(tmp_path: Path) -> None:
    path = write(tmp_path / "conf.py", "assert __name__ != '__main__'\nworkers = 2\n")
    assert read_python_config(path) == {"workers": 2}


@pytest.mark.skipif(not HOOKS, reason="no hooks declared")
def test_read_python_config_hooks_are_functions(tmp_path: Path) -> None:
    hook = HOOKS[0]
    path = write(tmp_path / "conf.py", f"def {hook}(*args):\n    return 'called'\n")
    values = read_python_config(path)
    assert values[hook]() == "called"
    config, _ = resolve({}, config_path=path, environ={}, cwd=str(tmp_path))
    assert getattr(config, hook)() == "called"
    bad = write(tmp_path / "bad.py", f"{hook} = 'not a function'\n")
    with pytest.raises(ConfigError, match=hook):
        resolve({}, config_path=bad, environ={}, cwd=str(tmp_path))


# -- pyproject.toml ------------------------------------------------------------------------


def test_read_pyproject(tmp_path: Path) -> None:
    path = write(
        tmp_path / "pyproject.toml",
        '[project]\nname = "x"\n\n[tool.greenserve]\n'
        'workers = 2\nmax-body-size = "10M"\nbind = ["[::1]:0"]\n',
    )
    assert read_pyproject(path) == {"workers": 2, "max_body_size": "10M", "bind": ["[::1]:0"]}


def test_read_pyproject_without_section(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", "[tool.other]\nx = 1\n")
    assert read_pyproject(path) == {}


def test_read_pyproject_unknown_key_suggests(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", "[tool.greenserve]\nmax-body-sise = 1\n")
    with pytest.raises(ConfigError) as info:
        read_pyproject(path)
    assert "unknown setting 'max-body-sise'" in str(info.value)
    assert "did you mean 'max_body_size'?" in str(info.value)
    assert "[tool.greenserve]" in str(info.value)


def test_read_pyproject_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", "[tool.greenserve\nworkers = 2\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        read_pyproject(path)


def test_read_pyproject_section_not_a_table(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", "[tool]\ngreenserve = 3\n")
    with pytest.raises(ConfigError, match="must be a table"):
        read_pyproject(path)


# -- resolve: precedence ------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write(
        tmp_path / "pyproject.toml",
        "[tool.greenserve]\nworkers = 2\nbacklog = 10\nkeep-alive = 1\nlog_level = 'debug'\n",
    )
    write(tmp_path / DEFAULT_CONFIG_FILE, "workers = 3\nbacklog = 20\nkeep_alive = 2\n")
    return tmp_path


def test_resolve_defaults_only(tmp_path: Path) -> None:
    config, files = resolve({}, environ={}, cwd=str(tmp_path))
    assert config == Config()
    assert files == []


def test_resolve_precedence(project: Path) -> None:
    environ = {"GREENSERVE_WORKERS": "4", "GREENSERVE_BACKLOG": "30", "UNRELATED": "x"}
    config, files = resolve({"workers": "5"}, environ=environ, cwd=str(project))
    assert config.workers == 5  # argv
    assert config.backlog == 30  # environment
    assert config.keep_alive == 2.0  # greenserve.conf.py
    assert config.log_level == "debug"  # pyproject.toml
    assert config.graceful_timeout == Config().graceful_timeout  # default
    assert files == [str(project / "pyproject.toml"), str(project / DEFAULT_CONFIG_FILE)]


def test_resolve_each_layer_overrides_the_one_below(project: Path) -> None:
    cwd = str(project)
    assert resolve({}, environ={}, cwd=cwd)[0].workers == 3
    assert resolve({}, environ={"GREENSERVE_WORKERS": "4"}, cwd=cwd)[0].workers == 4
    assert resolve({"workers": 5}, environ={"GREENSERVE_WORKERS": "4"}, cwd=cwd)[0].workers == 5
    os.remove(project / DEFAULT_CONFIG_FILE)
    assert resolve({}, environ={}, cwd=cwd)[0].workers == 2


def test_resolve_explicit_config_replaces_default_file(project: Path, tmp_path_factory) -> None:
    other = write(tmp_path_factory.mktemp("elsewhere") / "custom.py", "backlog = 99\n")
    config, files = resolve({}, config_path=other, environ={}, cwd=str(project))
    assert config.backlog == 99
    assert config.workers == 2  # pyproject, the default greenserve.conf.py is not read
    assert files == [str(project / "pyproject.toml"), other]


def test_resolve_config_from_environment(project: Path, tmp_path_factory) -> None:
    other = write(tmp_path_factory.mktemp("env") / "env_conf.py", "backlog = 77\n")
    config, files = resolve({}, environ={"GREENSERVE_CONFIG": other}, cwd=str(project))
    assert config.backlog == 77
    assert other in files
    explicit = write(tmp_path_factory.mktemp("explicit") / "explicit.py", "backlog = 88\n")
    config, _ = resolve({}, config_path=explicit, environ={"GREENSERVE_CONFIG": other}, cwd=str(project))
    assert config.backlog == 88


def test_resolve_missing_explicit_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        resolve({}, config_path=str(tmp_path / "missing.py"), environ={}, cwd=str(tmp_path))


def test_resolve_pyproject_without_section_is_not_listed(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
    assert resolve({}, environ={}, cwd=str(tmp_path))[1] == []


def test_resolve_cross_checks_apply_to_the_merged_result(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool.greenserve]\nkeyfile = 'k.pem'\n")
    with pytest.raises(ConfigError, match="certfile"):
        resolve({}, environ={}, cwd=str(tmp_path))
    config, _ = resolve({"certfile": "c.pem"}, environ={}, cwd=str(tmp_path))
    assert config.keyfile == "k.pem" and config.certfile == "c.pem"


# -- resolve: errors name their source -------------------------------------------------------


def test_unknown_key_in_pyproject(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[tool.greenserve]\nworker = 2\n")
    with pytest.raises(ConfigError, match=r"pyproject\.toml.*did you mean 'workers'"):
        resolve({}, environ={}, cwd=str(tmp_path))


def test_unknown_key_in_config_file(tmp_path: Path) -> None:
    write(tmp_path / DEFAULT_CONFIG_FILE, "bnd = ['x:1']\n")
    with pytest.raises(ConfigError, match=r"greenserve\.conf\.py.*did you mean 'bind'"):
        resolve({}, environ={}, cwd=str(tmp_path))


def test_unknown_key_in_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"GREENSERVE_KEEPALIVE.*did you mean 'keep_alive'"):
        resolve({}, environ={"GREENSERVE_KEEPALIVE": "3"}, cwd=str(tmp_path))


@pytest.mark.parametrize(
    ("layer", "source"),
    [
        ("pyproject", "pyproject.toml"),
        ("file", DEFAULT_CONFIG_FILE),
        ("env", "environment"),
        ("argv", "command line"),
    ],
)
def test_bad_values_name_their_source(tmp_path: Path, layer: str, source: str) -> None:
    argv: dict = {}
    environ: dict = {}
    if layer == "pyproject":
        write(tmp_path / "pyproject.toml", "[tool.greenserve]\nworkers = 'many'\n")
    elif layer == "file":
        write(tmp_path / DEFAULT_CONFIG_FILE, "workers = 'many'\n")
    elif layer == "env":
        environ["GREENSERVE_WORKERS"] = "many"
    else:
        argv["workers"] = "many"
    with pytest.raises(ConfigError) as info:
        resolve(argv, environ=environ, cwd=str(tmp_path))
    assert source in str(info.value)
    # Named as the user wrote it: the setting, its environment variable or its flag.
    named = {"env": "GREENSERVE_WORKERS", "argv": "--workers"}.get(layer, "workers")
    assert named in str(info.value)


def test_bad_value_in_a_lower_layer_is_an_error_even_if_overridden(tmp_path: Path) -> None:
    """Every source is validated: a typo in pyproject is reported, not masked by argv."""
    write(tmp_path / "pyproject.toml", "[tool.greenserve]\nworkers = 0\n")
    with pytest.raises(ConfigError, match="pyproject"):
        resolve({"workers": 2}, environ={}, cwd=str(tmp_path))


# -- setting_sources: where each value comes from --------------------------------------------


def test_setting_sources_names_every_layer(project: Path) -> None:
    environ = {"GREENSERVE_BACKLOG": "30"}
    sources = setting_sources({"workers": "5", "app": "x:app"}, environ=environ, cwd=str(project))
    assert set(sources) == set(config_module.SETTINGS)
    assert sources["workers"] == COMMAND_LINE
    assert sources["app"] == COMMAND_LINE
    assert sources["backlog"] == "GREENSERVE_BACKLOG"
    assert sources["keep_alive"] == str(project / DEFAULT_CONFIG_FILE)
    assert sources["log_level"] == f"{project / 'pyproject.toml'} [tool.greenserve]"
    assert sources["graceful_timeout"] == DEFAULT


def test_setting_sources_explicit_config_file_is_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "custom.py", "backlog = 7\n")
    sources = setting_sources(config_path="custom.py", environ={}, cwd=str(tmp_path))
    assert sources["backlog"] == str(tmp_path / "custom.py")


@pytest.mark.parametrize(
    ("environ", "workers", "bind"),
    [
        ({}, DEFAULT, DEFAULT),
        ({"WEB_CONCURRENCY": "3", "PORT": "8080"}, "WEB_CONCURRENCY", "PORT"),
        ({"PORT": "http"}, DEFAULT, DEFAULT),  # not a port number: the default stays 127.0.0.1:8000
        ({"WEB_CONCURRENCY": "3", "GREENSERVE_WORKERS": "2"}, "GREENSERVE_WORKERS", DEFAULT),
    ],
)
def test_setting_sources_conventional_variables(
    tmp_path: Path, environ: dict[str, str], workers: str, bind: str
) -> None:
    sources = setting_sources(environ=environ, cwd=str(tmp_path))
    assert (sources["workers"], sources["bind"]) == (workers, bind)


def test_resolve_with_sources_agrees_with_resolve(project: Path) -> None:
    environ = {"GREENSERVE_BACKLOG": "30"}
    config, files, sources = resolve_with_sources({"workers": 5}, environ=environ, cwd=str(project))
    assert (config, files) == resolve({"workers": 5}, environ=environ, cwd=str(project))
    assert sources == setting_sources({"workers": 5}, environ=environ, cwd=str(project))


def test_gather_reports_the_source_of_a_bad_value(project: Path) -> None:
    with pytest.raises(ConfigError, match="GREENSERVE_BACKLOG"):
        gather({}, environ={"GREENSERVE_BACKLOG": "many"}, cwd=str(project))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "keepalive = 3\n",
            "unknown setting 'keepalive' (did you mean 'keep_alive'? 'keepalive' is gunicorn's name)",
        ),
        (
            "threads = 4\n",
            "unknown setting 'threads' (greenserve runs each request in a greenlet: threads has no",
        ),
        ("daemon = True\n", "unknown setting 'daemon' (greenserve does not daemonize"),
    ],
)
def test_gunicorn_conf_names_are_explained(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path / "gunicorn_style.py", text)
    with pytest.raises(ConfigError) as info:
        read_python_config(path)
    assert expected in str(info.value)
    assert "prefix helper names" not in str(info.value)
