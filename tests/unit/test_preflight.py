"""Unit tests for greenserve.preflight: what is checked before anything starts, in one line each."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from greenserve import preflight
from greenserve.config import Config
from greenserve.errors import EXIT_APP_LOAD_ERROR, EXIT_CONFIG, AppLoadError, ConfigError


def error(config: Config) -> str:
    with pytest.raises(ConfigError) as info:
        preflight.check(config)
    assert info.value.exit_code == EXIT_CONFIG
    assert "\n" not in str(info.value)
    return str(info.value)


def test_a_good_configuration_passes(tmp_path: Path) -> None:
    (tmp_path / "existing.log").write_text("")
    preflight.check(
        Config(
            app="myproject.wsgi:application",
            chdir=str(tmp_path),
            worker_tmp_dir=str(tmp_path),
            error_logfile=str(tmp_path / "existing.log"),
            access_logfile=str(tmp_path / "new.log"),
            pidfile=str(tmp_path / "gs.pid"),
        )
    )
    assert sorted(os.listdir(tmp_path)) == ["existing.log"]  # nothing created by checking


def test_stderr_and_empty_paths_are_not_files() -> None:
    preflight.check(Config(error_logfile="-", access_logfile="", pidfile=""))


@pytest.mark.parametrize("name", ["error_logfile", "access_logfile", "pidfile"])
def test_file_in_a_missing_directory(tmp_path: Path, name: str) -> None:
    path = tmp_path / "missing" / "file"
    flag = {"error_logfile": "--error-logfile", "access_logfile": "--access-logfile", "pidfile": "--pidfile"}
    assert error(Config(**{name: str(path)})) == (
        f"{flag[name]} {path}: directory {tmp_path / 'missing'} does not exist"
    )


def test_access_log_off_is_not_checked(tmp_path: Path) -> None:
    preflight.check(Config(access_log=False, access_logfile=str(tmp_path / "missing" / "a.log")))


def test_file_that_is_a_directory(tmp_path: Path) -> None:
    assert error(Config(error_logfile=str(tmp_path))) == f"--error-logfile {tmp_path}: is a directory"


@pytest.mark.parametrize("name", ["chdir", "worker_tmp_dir"])
def test_directories(tmp_path: Path, name: str) -> None:
    flag = "--" + name.replace("_", "-")
    (tmp_path / "file").write_text("")
    assert error(Config(**{name: str(tmp_path / "nope")})) == f"{flag} {tmp_path / 'nope'}: no such directory"
    assert error(Config(**{name: str(tmp_path / "file")})) == f"{flag} {tmp_path / 'file'}: not a directory"


def test_unknown_user_and_group() -> None:
    if os.name != "posix":
        pytest.skip("--user and --group are POSIX")
    assert error(Config(user="gs-no-such-user")) == "--user gs-no-such-user: no such user"
    assert error(Config(group="gs-no-such-group")) == "--group gs-no-such-group: no such group"


def test_switching_users_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    if os.name != "posix":
        pytest.skip("--user and --group are POSIX")
    monkeypatch.setattr(os, "geteuid", lambda: 12345)
    assert error(Config(user="0")) == "--user 0: only root can switch the workers to another user or group"


def test_application_given_as_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AppLoadError) as info:
        preflight.check(Config(app="app.py"))
    assert info.value.exit_code == EXIT_APP_LOAD_ERROR


def test_message_with_a_line_break_in_a_path(tmp_path: Path) -> None:
    missing = str(tmp_path / "logs\n[INFO] forged")
    message = error(Config(error_logfile=f"{missing}/error.log"))
    assert message.startswith("--error-logfile '")
    assert preflight.shown("plain/path") == "plain/path"
