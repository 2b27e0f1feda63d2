"""Error log and access log: destinations, text or JSON lines.

Two loggers: ``greenserve.error`` for the server's own messages (level from
``--log-level``) and ``greenserve.access`` for one line per request. Both
can be redirected to files, which are reopened on demand (SIGUSR1 from
logrotate) through :func:`reopen_files`, and written as text or as JSON
lines (``--log-format``). :func:`escape` makes what a client sent safe to
write in either.

This module is imported by the master: no gevent, asyncio or application.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from greenserve.config import Config

ERROR_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"

ERROR_LOGGER = "greenserve.error"
ACCESS_LOGGER = "greenserve.access"

error_log = logging.getLogger(ERROR_LOGGER)
access_log = logging.getLogger(ACCESS_LOGGER)

#: The keys an access log record carries (as record attributes) besides its
#: text line, in the order a JSON line shows them.
ACCESS_FIELDS = (
    "method",
    "path",
    "query",
    "status",
    "bytes",
    "duration",
    "remote",
    "request_id",
    "user_agent",
    "referer",
    "protocol",
)

#: This process's worker (its age: 1 for the master's first worker, then 2,
#: 3...); None in the master and in single-process mode.
worker_id: int | None = None


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


# -- JSON lines ----------------------------------------------------------------------

#: ``(second, "2026-01-01T12:00:00", "+00:00")`` of the last line: the date and
#: offset are computed once a second, not once a line.
_last_second: tuple[int, str, str] = (-1, "", "")


def iso_time(created: float) -> str:
    """``created`` (a ``time.time()``) as ISO 8601 in local time, with milliseconds and offset."""
    global _last_second
    second = int(created)
    cached = _last_second
    if cached[0] != second:
        local = time.localtime(second)
        minutes = abs(local.tm_gmtoff) // 60
        zone = f"{'-' if local.tm_gmtoff < 0 else '+'}{minutes // 60:02d}:{minutes % 60:02d}"
        cached = _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", local), zone)
    return f"{cached[1]}.{int((created - second) * 1000):03d}{cached[2]}"


_ENCODER = json.JSONEncoder(ensure_ascii=True, default=str, separators=(",", ":"))


def _clean(value: str) -> str:
    # A lone surrogate (a file name decoded with surrogateescape, say) is not
    # Unicode: JSON decoders other than Python's may reject or mangle it.
    if value.isascii():
        return value
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``pid``, ``worker``, ``message``.

    Records of the access log add the :data:`ACCESS_FIELDS`; a record with an
    exception adds ``exc_info`` (the formatted traceback) and one logged with
    ``stack_info=True`` adds ``stack_info``. Every line is valid JSON, in
    ASCII, whatever the message holds: quotes, backslashes, newlines, control
    characters and non-ASCII text are escaped by the JSON encoder, so a line
    never spans two lines of the file.
    """

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "worker": worker_id,
            "message": _clean(record.getMessage()),
        }
        attributes = record.__dict__
        for key in ACCESS_FIELDS:
            if key in attributes:
                value = attributes[key]
                data[key] = _clean(value) if isinstance(value, str) else value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)  # cached, as logging.Formatter does
        if record.exc_text:
            data["exc_info"] = _clean(record.exc_text)
        if record.stack_info:
            data["stack_info"] = _clean(self.formatStack(record.stack_info))
        return _ENCODER.encode(data)


# -- setting up --------------------------------------------------------------------------


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


def wants_access_fields(config: Config) -> bool:
    """Whether access log records carry the :data:`ACCESS_FIELDS` (they cost a little per request)."""
    return config.log_format == "json"


def setup(config: Config) -> None:
    """Point both loggers at their destinations; safe to call again after a reload."""
    json_lines = config.log_format == "json"
    error_format = JsonFormatter() if json_lines else logging.Formatter(ERROR_FORMAT, DATE_FORMAT)
    access_format = JsonFormatter() if json_lines else logging.Formatter("%(message)s")
    _replace_handlers(error_log, _handler(config.error_logfile, error_format))
    error_log.setLevel(config.log_level.upper())
    error_log.propagate = False
    if config.access_log:
        _replace_handlers(access_log, _handler(config.access_logfile, access_format))
        access_log.setLevel(logging.INFO)
    else:
        access_log.setLevel(logging.CRITICAL + 1)
    access_log.propagate = False


def after_fork(worker: int | None) -> None:
    """In a new worker: remember its id (the ``worker`` of its JSON lines)."""
    global worker_id
    worker_id = worker


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
