"""Error log and access log destinations (stdlib ``logging``).

Two loggers: ``greenserve.error`` for the server's own messages (level from
``--log-level``) and ``greenserve.access`` for one line per request. Both
can be redirected to files, which are reopened on demand (SIGUSR1 from
logrotate) through :func:`reopen_files`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys

from greenserve.config import Config

ERROR_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"

error_log = logging.getLogger("greenserve.error")
access_log = logging.getLogger("greenserve.access")


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


class _CapturingFileHandler(logging.FileHandler):
    """The error log file, standing in for stdout and stderr too (``--capture-output``).

    Every (re)open points file descriptors 1 and 2 at the file: ``print()``
    and whatever writes to stderr land in the error log, and after a log
    rotation (SIGUSR1 reopens the file) they follow it to the new file.
    """

    def _open(self) -> io.TextIOWrapper:
        stream = super()._open()
        _flush_std()
        os.dup2(stream.fileno(), 1)
        os.dup2(stream.fileno(), 2)
        return stream


def _handler(destination: str, formatter: logging.Formatter, capture: bool = False) -> logging.Handler:
    handler: logging.Handler
    if destination in ("-", ""):
        handler = logging.StreamHandler(sys.stderr)
        if capture:  # the error log is stderr: stdout joins it
            _flush_std()
            os.dup2(2, 1)
    elif capture:
        handler = _CapturingFileHandler(destination, encoding="utf-8")
    else:
        handler = logging.FileHandler(destination, encoding="utf-8")
    handler.setFormatter(formatter)
    setattr(handler, "_greenserve", True)  # noqa: B010 - marks the handlers setup() owns
    return handler


def _replace_handlers(logger: logging.Logger, handler: logging.Handler) -> None:
    for old in [h for h in logger.handlers if getattr(h, "_greenserve", False)]:
        logger.removeHandler(old)
        old.close()
    logger.addHandler(handler)


def setup(config: Config) -> None:
    """Point both loggers at their destinations; safe to call again after a reload."""
    error_format = logging.Formatter(ERROR_FORMAT, DATE_FORMAT)
    _replace_handlers(error_log, _handler(config.error_logfile, error_format, config.capture_output))
    error_log.setLevel(config.log_level.upper())
    error_log.propagate = False
    if config.access_log:
        _replace_handlers(access_log, _handler(config.access_logfile, logging.Formatter("%(message)s")))
        access_log.setLevel(logging.INFO)
    else:
        access_log.setLevel(logging.CRITICAL + 1)
    access_log.propagate = False


def reopen_files() -> None:
    """Reopen log files (after logrotate moved them)."""
    for logger in (error_log, access_log):
        for handler in logger.handlers:
            if isinstance(handler, logging.FileHandler):
                handler.acquire()
                try:
                    handler.close()
                    handler.stream = handler._open()
                finally:
                    handler.release()
