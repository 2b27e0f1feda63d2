"""Error log and access log: destinations, text or JSON lines, ``--log-config``.

Two loggers: ``greenserve.error`` for the server's own messages (level from
``--log-level``) and ``greenserve.access`` for one line per request. Each
gets one handler of greenserve's own (stderr or a file, text or JSON lines),
unless a ``--log-config`` file configures that logger itself: then the file
decides everything about it.

A ``--log-config`` file is read once in the master and applied there, then
again in every worker right after the fork (handlers that hold sockets or
threads must not be shared across a fork), and read afresh on SIGHUP. Log
files, greenserve's or the file's, are reopened on SIGUSR1 (logrotate)
through :func:`reopen_files`.

This module is imported by the master: no gevent, asyncio or application.
"""

from __future__ import annotations

import abc
import configparser
import contextlib
import io
import json
import logging
import logging.config
import os
import runpy
import sys
import time
import tomllib
from collections.abc import Callable, Mapping
from typing import Any

from greenserve.config import Config
from greenserve.errors import BootError, ConfigError

ERROR_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"

ERROR_LOGGER = "greenserve.error"
ACCESS_LOGGER = "greenserve.access"


class _ServerLogger(logging.Logger):
    """greenserve's two loggers: never ``disabled``.

    ``dictConfig`` disables every existing logger its dictionary does not
    name unless ``disable_existing_loggers`` is false, and that is its
    default: a Django ``LOGGING`` (or any application's logging setup) that
    does not say so would silence the server's error log in each worker,
    crash reports included. To quiet these loggers, set their level.
    """

    @property
    def disabled(self) -> bool:
        return False

    @disabled.setter
    def disabled(self, value: bool) -> None:
        pass


#: --statsd-host: told of each error log record at warning or above (see count_records).
_record_counter: Callable[[logging.LogRecord], None] | None = None


class _ErrorLogger(_ServerLogger):
    """``greenserve.error``: also counts its warnings and errors for statsd.

    Counted here, in the logger, rather than by a handler: a ``--log-config``
    replaces the logger's handlers and filters, and counting must survive it.
    """

    def handle(self, record: logging.LogRecord) -> None:
        counter = _record_counter
        if counter is not None and record.levelno >= logging.WARNING:
            counter(record)
        super().handle(record)


def count_records(counter: Callable[[logging.LogRecord], None] | None) -> None:
    """Call ``counter`` with every error log record at warning or above (None: stop)."""
    global _record_counter
    _record_counter = counter


error_log = logging.getLogger(ERROR_LOGGER)
access_log = logging.getLogger(ACCESS_LOGGER)
error_log.__class__ = _ErrorLogger
access_log.__class__ = _ServerLogger

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

    Usable in a ``--log-config`` file too: ``{"()": "greenserve.logs.JsonFormatter"}``.
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


# -- --log-config files ----------------------------------------------------------------


class LogConfig(abc.ABC):
    """A ``--log-config`` file, read once, applied as often as needed (master, each worker, HUP)."""

    def __init__(self, source: str, loggers: frozenset[str]) -> None:
        #: Where it came from, for messages: ``--log-config PATH``.
        self.source = source
        #: The logger names it configures.
        self.loggers = loggers

    def takes(self, name: str) -> bool:
        """Whether it configures logger ``name`` (or greenserve's parent logger ``greenserve``)."""
        return name in self.loggers or "greenserve" in self.loggers

    @abc.abstractmethod
    def apply(self) -> None:
        """Configure logging from it; raises ConfigError in one line."""

    def _failed(self, exc: BaseException) -> ConfigError:
        message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)
        cause = exc.__cause__ or exc.__context__
        if cause is not None and str(cause) not in message:
            message += f": {type(cause).__name__}: {cause}"
        return ConfigError(f"{self.source}: {' '.join(message.split())}")


class DictLogConfig(LogConfig):
    """A :func:`logging.config.dictConfig` dictionary (JSON, TOML, Python, or a configuration file's)."""

    def __init__(self, source: str, data: dict[str, Any]) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a dictionary, got {type(data).__name__}")
        # As in gunicorn: loggers that exist (the application's, with --preload)
        # keep working unless the file says otherwise; version 1 is the only one.
        self.data = {"version": 1, "disable_existing_loggers": False, **data}
        loggers = self.data.get("loggers", {})
        if not isinstance(loggers, dict):
            raise ConfigError(f"{source}: 'loggers' must be a dictionary")
        incremental = bool(self.data.get("incremental", False))
        super().__init__(source, frozenset() if incremental else frozenset(loggers))

    def apply(self) -> None:
        try:
            # dictConfig consumes the dictionaries it is given: a fresh copy each time.
            logging.config.dictConfig(_copy(self.data))
        except Exception as exc:  # noqa: BLE001 - any error in the file is one line
            raise self._failed(exc) from None


class IniLogConfig(LogConfig):
    """A :func:`logging.config.fileConfig` file: what gunicorn's ``--log-config`` reads."""

    def __init__(self, source: str, parser: configparser.ConfigParser) -> None:
        self.parser = parser
        names = set()
        try:
            keys = [key.strip() for key in parser.get("loggers", "keys").split(",") if key.strip()]
            for key in keys:
                if key != "root":
                    names.add(parser.get(f"logger_{key}", "qualname", fallback=key))
        except configparser.Error as exc:
            raise ConfigError(f"{source}: {' '.join(str(exc).split())}") from None
        super().__init__(source, frozenset(names))

    def apply(self) -> None:
        try:
            logging.config.fileConfig(self.parser, disable_existing_loggers=False)
        except KeyError as exc:  # fileConfig's way of saying a section or option is missing
            raise ConfigError(f"{self.source}: missing section or option {exc}") from None
        except Exception as exc:  # noqa: BLE001 - any error in the file is one line
            raise self._failed(exc) from None


#: Names a Python ``--log-config`` file may give its dictionary (Django's, gunicorn's).
PYTHON_NAMES = ("LOGGING", "logconfig_dict")


def read_log_config(source: str | Mapping[str, Any]) -> LogConfig:
    """Read (not apply) a ``--log-config`` file, or the dictionary a configuration file gave.

    ``.json``: a JSON object; ``.toml``: the whole document; ``.py``: a module
    defining a dictionary named ``LOGGING`` or ``logconfig_dict``; ``.ini``,
    ``.conf``, ``.cfg``: a :func:`logging.config.fileConfig` file. Raises
    ConfigError, in one line, for anything that cannot be read.
    """
    if isinstance(source, Mapping):
        return DictLogConfig("log_config (a dictionary)", dict(source))
    path = source
    where = f"--log-config {path}"
    if not os.path.isfile(path):
        raise ConfigError(f"{where}: no such file")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".json":
            with open(path, encoding="utf-8") as handle:
                return DictLogConfig(where, json.load(handle))
        if ext == ".toml":
            with open(path, "rb") as handle:
                return DictLogConfig(where, tomllib.load(handle))
        if ext == ".py":
            return DictLogConfig(where, _python_dict(path))
        if ext in (".ini", ".conf", ".cfg"):
            parser = configparser.ConfigParser()  # what fileConfig() itself would use
            with open(path, encoding="utf-8") as handle:
                parser.read_file(handle)
            return IniLogConfig(where, parser)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - a syntax error, a bad encoding...
        message = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise ConfigError(f"{where}: {message}") from None
    raise ConfigError(
        f"{where}: unknown file type {ext or '(none)'!r}; expected .json, .toml, "
        ".py (defining LOGGING or logconfig_dict) or .ini/.conf (logging.config.fileConfig)"
    )


def _python_dict(path: str) -> Any:
    namespace = runpy.run_path(path, run_name="__greenserve_log_config__")
    found = [name for name in PYTHON_NAMES if name in namespace]
    if len(found) != 1:
        what = "defines both LOGGING and logconfig_dict" if found else "defines no LOGGING dictionary"
        raise ConfigError(f"--log-config {path}: {what} (expected one of {', '.join(PYTHON_NAMES)})")
    return namespace[found[0]]


def _copy(value: Any) -> Any:
    """A copy of the dictionaries and lists in ``value``; other objects are shared."""
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


# -- setting up --------------------------------------------------------------------------

#: What the last successful setup() applied: applied again after a fork, and
#: restored when a reload's logging configuration fails.
_current: tuple[Config, LogConfig | None] | None = None


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


def _own_handler(destination: str, formatter: logging.Formatter, capture: bool = False) -> logging.Handler:
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


def _drop_own_handlers(logger: logging.Logger) -> None:
    for old in [h for h in logger.handlers if getattr(h, "_greenserve", False)]:
        logger.removeHandler(old)
        old.close()


def _install(
    logger: logging.Logger,
    destination: str,
    formatter: logging.Formatter,
    level: int | str,
    capture: bool = False,
) -> None:
    try:
        handler = _own_handler(destination, formatter, capture)
    except OSError as exc:
        raise ConfigError(f"cannot open log file {destination}: {exc.strerror or exc}") from None
    _drop_own_handlers(logger)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def _release(logger: logging.Logger) -> None:
    """Hand a logger back to the logging module's defaults, for a --log-config to take."""
    _drop_own_handlers(logger)
    logger.setLevel(logging.NOTSET)
    logger.propagate = True


def wants_access_fields(config: Config) -> bool:
    """Whether access log records carry the :data:`ACCESS_FIELDS` (they cost a little per request).

    With JSON lines, and with a ``--log-config`` (whose formatters may use them).
    """
    return config.log_format == "json" or bool(config.log_config)


def _apply(config: Config, log_config: LogConfig | None) -> None:
    json_lines = config.log_format == "json"
    error_format: logging.Formatter = (
        JsonFormatter() if json_lines else logging.Formatter(ERROR_FORMAT, DATE_FORMAT)
    )
    access_format: logging.Formatter = JsonFormatter() if json_lines else logging.Formatter("%(message)s")
    if log_config is not None:
        for logger in (error_log, access_log):
            if log_config.takes(logger.name):
                _release(logger)
        log_config.apply()
    if log_config is None or not log_config.takes(ERROR_LOGGER):
        _install(
            error_log, config.error_logfile, error_format, config.log_level.upper(), config.capture_output
        )
    if log_config is None or not log_config.takes(ACCESS_LOGGER):
        if config.access_log:
            _install(access_log, config.access_logfile, access_format, logging.INFO)
        else:
            _drop_own_handlers(access_log)
            access_log.setLevel(logging.CRITICAL + 1)
            access_log.propagate = False


def setup(config: Config) -> None:
    """Point both loggers at their destinations; called again on each reload (HUP).

    Raises ConfigError (one line) when the ``--log-config`` file or a log file
    cannot be used; the previous configuration, if any, is then restored.
    """
    global _current
    log_config = read_log_config(config.log_config) if config.log_config else None
    previous = _current
    try:
        _apply(config, log_config)
    except ConfigError:
        if previous is not None:
            try:
                _apply(*previous)
            except ConfigError:  # pragma: no cover - it worked before; a file may have gone
                pass
        raise
    _current = (config, log_config)


def after_fork(worker: int | None) -> None:
    """In a new worker: remember its id, and apply the ``--log-config`` file afresh.

    The worker's handlers are then its own: a SysLogHandler's socket or a
    QueueHandler's listener thread is not shared with the master.
    """
    global worker_id
    worker_id = worker
    if _current is not None and _current[1] is not None:
        try:
            _apply(*_current)
        except ConfigError as exc:  # it worked in the master: something changed since
            raise BootError(str(exc)) from None


def _all_handlers() -> list[logging.Handler]:
    loggers: list[Any] = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    seen: dict[int, logging.Handler] = {}
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):  # PlaceHolders have none
            seen.setdefault(id(handler), handler)
    return list(seen.values())


def reopen_files() -> None:
    """Reopen every log file of every logger (after logrotate moved them): SIGUSR1.

    greenserve's own files and those of a ``--log-config``: each
    :class:`logging.FileHandler` (and subclass) that has its file open. A file
    opened with mode ``w`` is reopened with ``a``: truncating it on every
    USR1 would lose lines when nothing was rotated. A file that cannot be
    opened (its directory was removed, say) is reported in the error log and
    its handler keeps writing where it did: a signal never stops the master.
    """
    failures: list[tuple[str, OSError]] = []
    for handler in _all_handlers():
        if not isinstance(handler, logging.FileHandler):
            continue
        handler.acquire()
        try:
            old = handler.stream
            if old is None:
                continue  # delay=True and nothing written yet: it opens the new file itself
            if handler.mode.startswith("w"):
                handler.mode = "a" + handler.mode[1:]
            try:
                handler.stream = handler._open()
            except OSError as exc:
                failures.append((handler.baseFilename, exc))
                continue
            old.close()
        finally:
            handler.release()
    for path, error in failures:
        error_log.error("cannot reopen log file %s: %s; still writing to the file it had open", path, error)


# -- gunicorn's Logger, for hooks -------------------------------------------------------------


class ServerLog:
    """``arbiter.log`` and ``worker.log``: gunicorn's Logger methods, writing to the error log.

    Hooks written for gunicorn call ``server.log.info(...)``; the same calls
    work here and log to ``greenserve.error`` at the given level. gunicorn's
    ``access()`` is not provided: it takes gunicorn's own request and response
    objects, which greenserve does not have.
    """

    LOG_LEVELS = {
        "critical": logging.CRITICAL,
        "error": logging.ERROR,
        "warning": logging.WARNING,
        "info": logging.INFO,
        "debug": logging.DEBUG,
    }

    def __init__(self) -> None:
        self.error_log = error_log
        self.access_log = access_log

    def critical(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.error_log.critical(msg, *args, **kwargs)

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.error_log.error(msg, *args, **kwargs)

    def warning(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.error_log.warning(msg, *args, **kwargs)

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.error_log.info(msg, *args, **kwargs)

    def debug(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.error_log.debug(msg, *args, **kwargs)

    def exception(self, msg: object, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("exc_info", True)
        self.error_log.error(msg, *args, **kwargs)

    def log(self, lvl: int | str, msg: object, *args: Any, **kwargs: Any) -> None:
        """``lvl``: a level number or a name such as ``"info"``, as gunicorn accepts."""
        if isinstance(lvl, str):
            lvl = self.LOG_LEVELS.get(lvl.lower(), logging.INFO)
        self.error_log.log(lvl, msg, *args, **kwargs)

    def reopen_files(self) -> None:
        reopen_files()

    def __repr__(self) -> str:
        return f"<greenserve log {self.error_log.name}>"


#: The one instance hooks see as ``arbiter.log`` and ``worker.log``.
SERVER_LOG = ServerLog()
