"""Error log and access log destinations (stdlib ``logging``).

Two loggers: ``greenserve.error`` for the server's own messages (level from
``--log-level``) and ``greenserve.access`` for one line per request. Both
can be redirected to files, which are reopened on demand (SIGUSR1 from
logrotate) through :func:`reopen_files`. :func:`escape` makes what a client
sent safe to write in either.
"""

from __future__ import annotations

import logging
import sys

from greenserve.config import Config

ERROR_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"

ERROR_LOGGER = "greenserve.error"
ACCESS_LOGGER = "greenserve.access"

error_log = logging.getLogger(ERROR_LOGGER)
access_log = logging.getLogger(ACCESS_LOGGER)


# -- escaping ----------------------------------------------------------------------

#: nginx's access log escaping: controls, DEL, '"' and bytes above 0x7E as
#: \xHH, a backslash as \\ (latin-1 code points are the request's raw bytes).
_ESCAPES = {code: f"\\x{code:02X}" for code in (*range(0x20), 0x22, *range(0x7F, 0x100))}
_ESCAPES[0x5C] = "\\\\"


def escape(value: str) -> str:
    """``value`` as printable ASCII without ``"``: a client cannot forge a log line with it.

    Request values are latin-1 strings standing for the bytes the client
    sent, so each is shown as nginx shows bytes in its access log: ``\\x0A``
    for a newline, ``\\x22`` for ``"``, ``\\x1B`` for an escape sequence,
    ``\\xC3\\xA9`` for a UTF-8 ``é``, ``\\\\`` for a backslash. A character
    beyond latin-1 (only an application can put one in the environ) is shown
    as its UTF-8 bytes.
    """
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return value
    out = value.translate(_ESCAPES)
    if not out.isascii():
        out = "".join(
            char if char.isascii() else "".join(f"\\x{b:02X}" for b in char.encode("utf-8", "surrogatepass"))
            for char in out
        )
    return out


def request_summary(method: str, target: bytes, limit: int = 200) -> str:
    """``GET /path?query`` for an error log message, escaped and cut at ``limit`` bytes."""
    return f"{escape(method)} {escape(target[:limit].decode('latin-1'))}"


def _handler(destination: str, formatter: logging.Formatter) -> logging.Handler:
    handler: logging.Handler
    if destination in ("-", ""):
        handler = logging.StreamHandler(sys.stderr)
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
    _replace_handlers(error_log, _handler(config.error_logfile, logging.Formatter(ERROR_FORMAT, DATE_FORMAT)))
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
