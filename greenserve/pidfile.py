"""``--pidfile``: written at start, removed at exit, never stolen from a live server."""

from __future__ import annotations

import contextlib
import os

from greenserve.errors import BootError


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write(path: str) -> None:
    """Write this process's pid atomically; refuse if another live server owns the file.

    The pid of this process's parent is not "another server": after USR2 the
    new master writes the file its parent (the old master) renamed.
    """
    pid = os.getpid()
    with contextlib.suppress(OSError, ValueError):
        with open(path) as handle:
            old = int(handle.read().strip() or 0)
        if old and old not in (pid, os.getppid()) and is_alive(old):
            raise BootError(f"pidfile {path}: another server is running (pid {old})")
    tmp = f"{path}.{pid}.tmp"
    try:
        with open(tmp, "w") as handle:
            handle.write(f"{pid}\n")
        os.replace(tmp, path)
    except OSError as exc:  # checked before starting; this is a race or a full disk
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise BootError(f"pidfile {path}: {exc.strerror or exc}") from None


def remove(path: str) -> None:
    """Remove ``path`` if it still names this process."""
    with contextlib.suppress(OSError, ValueError):
        with open(path) as handle:
            owner = int(handle.read().strip() or 0)
        if owner == os.getpid():
            os.unlink(path)
