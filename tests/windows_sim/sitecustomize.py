"""Simulate Windows for greenserve's own modules, on Linux.

Put this directory on PYTHONPATH. gevent keeps the real platform (deleting
``os.fork`` or ``fcntl`` for everyone breaks gevent itself); greenserve sees:

- ``greenserve.compat.CAN_FORK`` and ``POSIX`` false, as on Windows;
- ImportError for POSIX-only modules (fcntl, pwd, grp, resource, termios)
  imported from any ``greenserve.*`` module;
- ``os.fork()`` and POSIX-only signals refused when greenserve calls them.
"""

import builtins
import os
import signal
import sys

POSIX_ONLY_MODULES = {"fcntl", "pwd", "grp", "resource", "termios"}
POSIX_ONLY_SIGNALS = {
    getattr(signal, name)
    for name in ("SIGHUP", "SIGUSR1", "SIGUSR2", "SIGTTIN", "SIGTTOU", "SIGWINCH", "SIGCHLD", "SIGQUIT")
}


def _caller_is_greenserve(depth: int = 2) -> bool:
    frame = sys._getframe(depth)
    return str(frame.f_globals.get("__name__", "")).startswith("greenserve")


_real_import = builtins.__import__


def _import(name, globals=None, locals=None, fromlist=(), level=0):
    if (
        level == 0
        and name.split(".")[0] in POSIX_ONLY_MODULES
        and str((globals or {}).get("__name__", "")).startswith("greenserve")
    ):
        raise ImportError(f"simulated Windows: no module named {name!r}")
    return _real_import(name, globals, locals, fromlist, level)


builtins.__import__ = _import

_real_fork = os.fork


def _fork():
    if _caller_is_greenserve():
        raise OSError("simulated Windows: os.fork is not available")
    return _real_fork()


os.fork = _fork

_real_signal = signal.signal


def _signal(signum, handler):
    if signum in POSIX_ONLY_SIGNALS and _caller_is_greenserve():
        raise ValueError(f"simulated Windows: signal {signum} is not available")
    return _real_signal(signum, handler)


signal.signal = _signal

import greenserve.compat  # noqa: E402

greenserve.compat.CAN_FORK = False
greenserve.compat.POSIX = False
