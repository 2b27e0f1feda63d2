"""The pieces of ``greenserve ctl`` that need no master: values, directories, output, the load board."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from greenserve import ctl
from greenserve.config import parse_control_socket
from greenserve.errors import BootError
from greenserve.master import control
from greenserve.workerlink import LoadBoard


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("auto", "auto"),
        ("AUTO", "auto"),
        ("", ""),
        ("off", ""),
        ("none", ""),
        (None, ""),
        ("/run/app/ctl.sock", "/run/app/ctl.sock"),
        ("  rel.sock ", "rel.sock"),
    ],
)
def test_control_socket_values(given, expected):
    assert parse_control_socket(given) == expected


def test_control_socket_refuses_nul_and_non_strings():
    with pytest.raises(ValueError, match="NUL"):
        parse_control_socket("/run/a\0b")
    with pytest.raises(ValueError, match="expected a string"):
        parse_control_socket(3)


def test_default_socket_names():
    assert control.socket_name(4242) == "4242.sock"
    assert control.pid_of("4242.sock") == 4242
    for other in (".4242.sock-new", "4242.sock.tmp", "app.sock", "4242", "x4242.sock"):
        assert control.pid_of(other) is None


def test_runtime_directories(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    found = control.runtime_directories()
    assert found[0] == str(tmp_path / "greenserve")
    assert found[-1].endswith(f"greenserve-{os.geteuid()}")
    # Another user's session variable says nothing about where their sockets are.
    assert str(tmp_path / "greenserve") not in control.runtime_directories(os.geteuid() + 1)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "relative/dir")
    assert not any(path.startswith("relative") for path in control.runtime_directories())


def test_private_directory_is_created_0700_and_checked(tmp_path):
    path = tmp_path / "greenserve"
    control.private_directory(str(path))
    assert path.stat().st_mode & 0o777 == 0o700
    control.private_directory(str(path))  # existing and private: fine
    path.chmod(0o750)
    with pytest.raises(BootError, match="has mode 0750"):
        control.private_directory(str(path))
    link = tmp_path / "link"
    target = tmp_path / "target"
    target.mkdir(mode=0o700)
    link.symlink_to(target)
    with pytest.raises(BootError, match="not a directory"):
        control.private_directory(str(link))


def test_explicit_socket_directory_must_not_be_writable_by_others(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    with pytest.raises(BootError, match="can be written by other users"):
        control.check_directory(str(shared / "app.ctl"))
    shared.chmod(0o755)
    control.check_directory(str(shared / "app.ctl"))
    with pytest.raises(BootError, match="No such file or directory"):
        control.check_directory(str(tmp_path / "missing" / "app.ctl"))


def test_remove_stale_keeps_live_masters_and_other_files(tmp_path):
    (tmp_path / f"{os.getpid()}.sock").touch()
    (tmp_path / "notes.txt").touch()
    dead = 2**22 + 12345  # above the default pid_max: no such process
    (tmp_path / f"{dead}.sock").touch()
    control.remove_stale(str(tmp_path))
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"{os.getpid()}.sock", "notes.txt"]


def test_settings_become_json():
    def hook(arbiter):
        return None

    assert control.jsonable(("a", "b")) == ["a", "b"]
    assert control.jsonable({"version": 1, "loggers": {"x": (1,)}}) == {"version": 1, "loggers": {"x": [1]}}
    assert control.jsonable(hook).endswith("hook (a function)")
    assert control.jsonable(None) is None


def test_rss_of_this_process():
    if not Path("/proc/self/statm").exists():
        pytest.skip("no /proc")
    assert control.rss_bytes(os.getpid()) > 1024 * 1024
    assert control.rss_bytes(2**22 + 12345) is None


def test_load_board_activity_per_slot():
    board = LoadBoard(slots=4)
    try:
        first, second = board.allocate(), board.allocate()
        assert board.activity(first) == {"requests": 0, "connections": 0, "busy": 0}
        board.report(first, 1200, 3, 1)
        board.report(second, 7, 0, 0)
        assert board.activity(first) == {"requests": 1200, "connections": 3, "busy": 1}
        assert board.activity(second) == {"requests": 7, "connections": 0, "busy": 0}
        assert board.activity(-1) is None
        # A slot handed to a new worker starts from nothing.
        board.release(first)
        assert board.allocate() == first
        assert board.activity(first) == {"requests": 0, "connections": 0, "busy": 0}
        board.report(second, 2**40, 0, 0)  # 64-bit: a long-lived worker does not wrap
        assert board.activity(second)["requests"] == 2**40
    finally:
        board.close()


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "-"),
        (0.04, "0.0s"),
        (4.26, "4.3s"),
        (42.4, "42s"),
        (725, "12m05s"),
        (3 * 3600 + 125, "3h02m"),
        (2 * 86400 + 4 * 3600 + 59, "2d04h"),
    ],
)
def test_durations(seconds, shown):
    assert ctl.duration(seconds) == shown


@pytest.mark.parametrize(
    ("count", "shown"),
    [(None, "-"), (512, "512 B"), (2048, "2.0 KiB"), (43_200_000, "41.2 MiB"), (3 * 1024**3, "3.0 GiB")],
)
def test_sizes(count, shown):
    assert ctl.size(count) == shown


def test_table_aligns_numbers_right_and_text_left():
    text = ctl.table(("PID", "STATE"), [("7", "ready"), ("12345", "stopping")], (True, False))
    assert text.splitlines() == ["  PID  STATE", "    7  ready", "12345  stopping"]


def test_text_from_the_master_cannot_drive_the_terminal():
    shown = ctl.format_status(
        {
            "pid": 1,
            "version": "0",
            "app": "evil\x1b]0;owned\x07:app",
            "uptime": 1.0,
            "workers": {"wanted": 1, "running": 1, "ready": 1, "booting": 0, "stopping": 0, "current": 1},
            "generation": 1,
            "listeners": [],
            "control_socket": "/x",
        }
    )
    assert "\x1b" not in shown and "\x07" not in shown
    assert "evil\\x1b]0;owned\\x07:app" in shown
