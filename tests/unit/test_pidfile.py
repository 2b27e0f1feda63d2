"""Unit tests for greenserve.pidfile: a pidfile that cannot be written is one clear error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from greenserve import pidfile
from greenserve.errors import EXIT_BOOT_ERROR, BootError


def test_write_and_remove(tmp_path: Path) -> None:
    path = tmp_path / "gs.pid"
    pidfile.write(str(path))
    assert path.read_text() == f"{os.getpid()}\n"
    pidfile.remove(str(path))
    assert not path.exists()


def test_unwritable_location_is_a_boot_error(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "gs.pid"
    with pytest.raises(BootError) as info:
        pidfile.write(str(path))
    assert str(info.value) == f"pidfile {path}: No such file or directory"
    assert info.value.exit_code == EXIT_BOOT_ERROR


def test_failed_replace_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "run"
    target.mkdir()  # a directory where the pidfile should be: the final rename fails
    with pytest.raises(BootError, match=f"pidfile {target}: "):
        pidfile.write(str(target))
    assert [path.name for path in tmp_path.iterdir()] == ["run"]
