"""Checks on a resolved Config that need the file system or the user database.

They run in the command, before anything is bound or forked: without them a
log directory that does not exist, a pidfile the master cannot write or a
``--user`` that does not exist are found by the master after it bound its
sockets, and reported as a traceback. Each problem here is one line naming
the setting, and exit code 2 (4 for an application spec that cannot work).

Imported by the command that starts the master: no gevent, no application.
"""

from __future__ import annotations

import os

from greenserve import compat
from greenserve.config import Config
from greenserve.errors import BootError, ConfigError


def shown(text: str) -> str:
    """``text`` for a one-line message: quoted and escaped if it holds line breaks or control characters."""
    return text if text.isprintable() else repr(text)


def check(config: Config) -> None:
    """Raise ConfigError (or AppLoadError for the application spec) for the first problem found."""
    from greenserve.importer import parse_spec

    check_files(config)
    check_identity(config)
    if config.app:
        parse_spec(config.app)


def check_files(config: Config) -> None:
    """Directories that must exist, and files the master must be able to create."""
    if config.chdir:
        _directory("--chdir", config.chdir, writable=False)
    if config.worker_tmp_dir:
        _directory("--worker-tmp-dir", config.worker_tmp_dir, writable=True)
    paths = [("--error-logfile", config.error_logfile)]
    if config.access_log:
        paths.append(("--access-logfile", config.access_logfile))
    for flag, path in paths:
        if path not in ("", "-"):
            _writable_file(flag, path)
    if config.pidfile:
        # Written to a temporary file in the same directory, then renamed: the
        # directory must be writable even when the file already exists.
        _writable_file("--pidfile", config.pidfile, replace=True)


def check_identity(config: Config) -> None:
    """``--user`` and ``--group`` exist, and this process may switch to them."""
    if not (config.user or config.group) or not compat.POSIX:
        return  # single.py reports --user on platforms without it
    from greenserve.privileges import resolve_ids

    try:
        uid, gid = resolve_ids(config.user, config.group)
    except BootError as exc:
        raise ConfigError(shown(str(exc))) from None
    if os.geteuid() != 0 and (uid not in (None, os.geteuid()) or gid not in (None, os.getegid())):
        which = (
            f"--user {shown(config.user)}"
            if uid not in (None, os.geteuid())
            else f"--group {shown(config.group)}"
        )
        raise ConfigError(f"{which}: only root can switch the workers to another user or group")


def _directory(flag: str, path: str, *, writable: bool) -> None:
    if not os.path.exists(path):
        raise ConfigError(f"{flag} {shown(path)}: no such directory")
    if not os.path.isdir(path):
        raise ConfigError(f"{flag} {shown(path)}: not a directory")
    if writable and not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {shown(path)}: this user cannot create files in it")


def _writable_file(flag: str, path: str, *, replace: bool = False) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ConfigError(f"{flag} {shown(path)}: directory {shown(directory)} does not exist")
    if os.path.isdir(path):
        raise ConfigError(f"{flag} {shown(path)}: is a directory")
    exists = os.path.exists(path)
    if exists and not replace and not os.access(path, os.W_OK):
        raise ConfigError(f"{flag} {shown(path)}: this user cannot write to it")
    if (replace or not exists) and not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {shown(path)}: this user cannot create files in {shown(directory)}")
