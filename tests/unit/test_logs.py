"""greenserve.logs in this process: escaping, JSON lines, --log-config files, reopening, hooks' log."""

from __future__ import annotations

import base64
import datetime
import json
import logging
import logging.config
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from greenserve import logs
from greenserve.config import from_mapping
from greenserve.errors import BootError, ConfigError

GREENSERVE_LOGGERS = (logs.error_log, logs.access_log, logging.getLogger("greenserve"))


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Each test may reconfigure logging: put every logger it can touch back afterwards."""
    root = logging.getLogger()
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in (*GREENSERVE_LOGGERS, root)]
    current, worker = logs._current, logs.worker_id
    disabled = {
        name: lg.disabled for name, lg in logging.Logger.manager.loggerDict.items() if hasattr(lg, "disabled")
    }
    yield
    for name, was in disabled.items():
        logging.getLogger(name).disabled = was  # dictConfig disables the loggers it does not name
    for logger, handlers, level, propagate, disabled in saved:
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
        logger.disabled = disabled
    logs._current, logs.worker_id = current, worker


def _config(**settings):
    return from_mapping({"app": "x:app", **settings}, "test")


def _record(msg: str = "hello", *args, level: int = logging.INFO, name: str = "greenserve.error", **extra):
    record = logging.LogRecord(name, level, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


# -- escape ----------------------------------------------------------------------------


def test_escape_keeps_printable_ascii_as_it_is():
    value = "GET /a?b=1 HTTP/1.1 curl/8.5.0 ~!@#$%^&*()_+{}|:<>?[];',./`"
    assert logs.escape(value) is value


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ('a"\nb', "a\\x22\\x0Ab"),
        ("a\rb\x00c\x1b[31m", "a\\x0Db\\x00c\\x1B[31m"),
        ("tab\tdel\x7f", "tab\\x09del\\x7F"),
        ("back\\slash", "back\\\\slash"),
        ("caf\u00c3\u00a9 \u00ff", "caf\\xC3\\xA9 \\xFF"),  # latin-1 code points = the raw bytes
        ("\u0085 next line", "\\x85 next line"),  # a line break for str.splitlines() and some viewers
        ("\u2028\u20ac", "\\xE2\\x80\\xA8\\xE2\\x82\\xAC"),  # beyond latin-1: its UTF-8 bytes
        ("\udcff", "\\xED\\xB3\\xBF"),
    ],
)
def test_escape_like_nginx(value, escaped):
    assert logs.escape(value) == escaped
    assert logs.escape(value).isascii() and logs.escape(value).isprintable()


def test_request_summary_escapes_and_bounds_the_target():
    assert logs.request_summary("GET", b'/a\nb"c') == "GET /a\\x0Ab\\x22c"
    assert logs.request_summary("GET", b"/" + b"x" * 5000) == "GET /" + "x" * 199


# -- JSON lines ---------------------------------------------------------------------------


def test_json_line_has_the_stable_keys():
    logs.worker_id = 3
    line = logs.JsonFormatter().format(_record("served %d", 5, level=logging.WARNING))
    data = json.loads(line)
    assert list(data) == ["time", "level", "logger", "pid", "worker", "message"]
    assert data["level"] == "WARNING" and data["worker"] == 3 and data["message"] == "served 5"
    assert data["time"][10] == "T" and data["time"][-6] in "+-"  # ISO 8601 with its offset


@pytest.mark.parametrize("created", [0.0, 1_767_225_600.9999, 1_800_000_000.5, 1_800_000_001.25])
def test_iso_time_matches_datetime(created):
    expected = datetime.datetime.fromtimestamp(created).astimezone().isoformat(timespec="milliseconds")
    assert logs.iso_time(created) == expected
    assert datetime.datetime.fromisoformat(logs.iso_time(created)).timestamp() == pytest.approx(
        created, abs=0.001
    )


def test_json_line_is_one_line_of_ascii_whatever_the_message():
    hostile = "".join(map(chr, range(0x100))) + '"\\\u2028\u2029\U0001f600\udcff' + "x" * 1_000_000
    line = logs.JsonFormatter().format(_record("%s", hostile))
    assert "\n" not in line and "\r" not in line and line.isascii()
    message = json.loads(line)["message"]
    assert message == hostile.replace("\udcff", "\\udcff")  # a lone surrogate is not text: escaped
    json.loads(line.encode("ascii"))  # and strict decoders accept it too


def test_json_line_with_an_exception_and_access_fields():
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        exc_info = sys.exc_info()
    record = _record("failed", name="greenserve.access", method="GET", status=500, user_agent='a"\udcff')
    record.exc_info = exc_info
    data = json.loads(logs.JsonFormatter().format(record))
    assert data["exc_info"].startswith("Traceback (most recent call last):")
    assert data["exc_info"].endswith("ValueError: bad\nthing")
    assert data["method"] == "GET" and data["status"] == 500 and data["user_agent"] == 'a"\\udcff'
    assert data["logger"] == "greenserve.access"


def test_setup_json_uses_the_json_formatter_for_both_logs(tmp_path):
    access, error = tmp_path / "access.log", tmp_path / "error.log"
    logs.setup(_config(log_format="json", access_logfile=str(access), error_logfile=str(error)))
    logs.error_log.info('starting "now"')
    logs.access_log.info("GET /", extra={"status": 200})
    assert json.loads(error.read_text())["message"] == 'starting "now"'
    assert json.loads(access.read_text())["status"] == 200


# -- --log-config files ------------------------------------------------------------------------

DICT = {
    "version": 1,
    "formatters": {"plain": {"format": "%(name)s %(levelname)s %(message)s"}},
    "handlers": {"file": {"class": "logging.FileHandler", "filename": "FILE", "formatter": "plain"}},
    "loggers": {"greenserve.error": {"handlers": ["file"], "level": "DEBUG", "propagate": False}},
}


def _write_config(tmp_path: Path, kind: str, log_file: Path) -> Path:
    data = json.loads(json.dumps(DICT).replace("FILE", str(log_file)))
    if kind == "json":
        path = tmp_path / "logging.json"
        path.write_text(json.dumps(data))
    elif kind == "toml":
        path = tmp_path / "logging.toml"
        path.write_text(
            textwrap.dedent(
                f"""\
                version = 1
                [formatters.plain]
                format = "%(name)s %(levelname)s %(message)s"
                [handlers.file]
                class = "logging.FileHandler"
                filename = "{log_file}"
                formatter = "plain"
                [loggers."greenserve.error"]
                handlers = ["file"]
                level = "DEBUG"
                propagate = false
                """
            )
        )
    elif kind in ("py-LOGGING", "py-logconfig_dict"):
        path = tmp_path / "logging_conf.py"
        path.write_text(f"{kind[3:]} = {data!r}\n")
    else:
        path = tmp_path / "logging.ini"
        path.write_text(
            textwrap.dedent(
                f"""\
                [loggers]
                keys = root, error

                [handlers]
                keys = file

                [formatters]
                keys = plain

                [logger_root]
                handlers =

                [logger_error]
                qualname = greenserve.error
                handlers = file
                level = DEBUG
                propagate = 0

                [handler_file]
                class = FileHandler
                args = ({str(log_file)!r},)
                formatter = plain

                [formatter_plain]
                format = %(name)s %(levelname)s %(message)s
                """
            )
        )
    return path


@pytest.mark.parametrize("kind", ["json", "toml", "py-LOGGING", "py-logconfig_dict", "ini"])
def test_log_config_takes_the_loggers_it_configures(tmp_path, kind):
    log_file = tmp_path / "error.log"
    path = _write_config(tmp_path, kind, log_file)
    logs.setup(_config(log_config=str(path), log_level="warning"))
    assert not any(getattr(h, "_greenserve", False) for h in logs.error_log.handlers)
    assert logs.error_log.level == logging.DEBUG  # the file's level, not --log-level
    # The access log is not in the file: it keeps greenserve's handler.
    assert any(getattr(h, "_greenserve", False) for h in logs.access_log.handlers)
    logs.error_log.debug("through the file")
    assert log_file.read_text() == "greenserve.error DEBUG through the file\n"


def test_a_dictionary_from_a_configuration_file(tmp_path):
    log_file = tmp_path / "error.log"
    data = json.loads(json.dumps(DICT).replace("FILE", str(log_file)))
    logs.setup(_config(log_config=data))
    logs.error_log.info("from a dictionary")
    assert "from a dictionary" in log_file.read_text()


def test_configuring_the_parent_logger_takes_both(tmp_path):
    path = tmp_path / "logging.json"
    path.write_text(json.dumps({"version": 1, "loggers": {"greenserve": {"level": "INFO"}}}))
    logs.setup(_config(log_config=str(path)))
    for logger in (logs.error_log, logs.access_log):
        assert logger.handlers == [] and logger.propagate, logger


def test_disable_existing_loggers_cannot_silence_greenserve(tmp_path):
    path = tmp_path / "logging.json"
    path.write_text(json.dumps({"version": 1, "disable_existing_loggers": True, "root": {"level": "INFO"}}))
    logs.setup(_config(log_config=str(path)))
    assert not logs.error_log.disabled and logs.error_log.handlers
    # Nor the application's own logging setup (Django's LOGGING disables existing loggers by default).
    logging.config.dictConfig({"version": 1, "loggers": {"myapp": {"level": "DEBUG"}}})
    assert not logs.error_log.disabled and not logs.access_log.disabled
    assert logs.error_log.isEnabledFor(logging.INFO)


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("bad.json", "{not json", "JSONDecodeError"),
        ("list.json", "[1, 2]", "expected a dictionary, got list"),
        ("bad.toml", "version = ", "TOMLDecodeError"),
        ("none.py", "X = 1\n", "defines no LOGGING dictionary"),
        ("both.py", "LOGGING = {}\nlogconfig_dict = {}\n", "defines both LOGGING and logconfig_dict"),
        ("raises.py", "raise RuntimeError('oops')\n", "RuntimeError: oops"),
        ("bad.ini", "[loggers]\n", "No option 'keys'"),
        ("logging.yaml", "version: 1\n", "unknown file type '.yaml'"),
        ("version.json", '{"version": 2}', "Unsupported version: 2"),
        (
            "class.json",
            '{"handlers": {"h": {"class": "no.such.Handler"}}}',
            "Unable to configure handler 'h'",
        ),
        (
            "dir.json",
            '{"handlers": {"h": {"class": "logging.FileHandler", "filename": "/no/such/dir/x"}}}',
            "No such file",
        ),
    ],
)
def test_log_config_errors_are_one_line(tmp_path, name, content, error):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        logs.setup(_config(log_config=str(path)))
    message = str(caught.value)
    assert message.startswith(f"--log-config {path}: ")
    assert error in message and "\n" not in message, message


def test_a_log_file_that_cannot_be_opened_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigError, match=r"^cannot open log file .*/no/such/dir/error\.log: No such file"):
        logs.setup(_config(error_logfile=str(tmp_path / "no" / "such" / "dir" / "error.log")))


def test_missing_log_config_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        logs.setup(_config(log_config=str(tmp_path / "nope.json")))


def test_a_failing_log_config_restores_the_previous_setup(tmp_path):
    good = tmp_path / "error.log"
    logs.setup(_config(error_logfile=str(good)))
    bad = tmp_path / "bad.json"
    bad.write_text('{"handlers": {"h": {"class": "no.such.Handler"}}}')
    with pytest.raises(ConfigError):
        logs.setup(_config(log_config=str(bad)))
    logs.error_log.info("still here")
    assert "still here" in good.read_text()


def test_after_fork_applies_the_file_again_and_sets_the_worker(tmp_path):
    log_file = tmp_path / "error.log"
    logs.setup(_config(log_config=str(_write_config(tmp_path, "json", log_file))))
    (before,) = logs.error_log.handlers
    logs.after_fork(7)
    (after,) = logs.error_log.handlers
    assert after is not before and logs.worker_id == 7  # the worker's own handler
    log_file.unlink()
    log_file.mkdir()  # the file cannot be opened any more: the worker cannot start
    with pytest.raises(BootError, match="Is a directory"):
        logs.after_fork(8)


def test_reopen_files_reopens_the_handlers_of_a_log_config(tmp_path):
    log_file = tmp_path / "error.log"
    logs.setup(_config(log_config=str(_write_config(tmp_path, "json", log_file))))
    logs.error_log.info("before")
    log_file.rename(tmp_path / "error.log.1")
    logs.reopen_files()
    logs.error_log.info("after")
    assert log_file.read_text() == "greenserve.error INFO after\n"
    assert (tmp_path / "error.log.1").read_text() == "greenserve.error INFO before\n"


def test_a_file_that_cannot_be_reopened_is_reported_and_kept(tmp_path):
    errors = tmp_path / "error.log"
    logs.setup(_config(error_logfile=str(errors)))
    (tmp_path / "app").mkdir()
    handler = logging.FileHandler(tmp_path / "app" / "app.log")
    logs.access_log.addHandler(handler)
    (tmp_path / "app").rename(tmp_path / "gone")  # logrotate's olddir, say
    logs.reopen_files()
    logs.access_log.warning("still written")
    handler.close()
    assert "still written" in (tmp_path / "gone" / "app.log").read_text()
    assert f"cannot reopen log file {tmp_path}/app/app.log: [Errno 2] No such file" in errors.read_text()


def test_reopen_appends_to_a_file_opened_for_writing(tmp_path):
    log_file = tmp_path / "w.log"
    handler = logging.FileHandler(log_file, mode="w")
    logs.error_log.addHandler(handler)
    handler.stream.write("kept\n")
    logs.reopen_files()
    handler.stream.write("appended\n")
    handler.close()
    assert log_file.read_text() == "kept\nappended\n"


def test_wants_access_fields():
    assert not logs.wants_access_fields(_config())
    assert logs.wants_access_fields(_config(log_format="json"))
    assert logs.wants_access_fields(_config(log_config="logging.json"))


# -- server.log for hooks --------------------------------------------------------------------


def test_server_log_has_gunicorn_logger_methods():
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logs.error_log.addHandler(handler)
    logs.error_log.setLevel(logging.DEBUG)
    log = logs.SERVER_LOG
    log.debug("d %s", 1)
    log.info("i")
    log.warning("w")
    log.error("e")
    log.critical("c")
    log.log("warning", "by name")
    log.log(logging.INFO, "by number")
    try:
        raise KeyError("k")
    except KeyError:
        log.exception("failed %d", 2)
    assert [(r.levelname, r.getMessage()) for r in records] == [
        ("DEBUG", "d 1"),
        ("INFO", "i"),
        ("WARNING", "w"),
        ("ERROR", "e"),
        ("CRITICAL", "c"),
        ("WARNING", "by name"),
        ("INFO", "by number"),
        ("ERROR", "failed 2"),
    ]
    assert records[-1].exc_info is not None
    assert log.error_log is logs.error_log and log.access_log is logs.access_log


# -- access log atoms and fields ------------------------------------------------------------------


class _Response:
    """What the access log reads from a response."""

    def __init__(self, headers, status=200, body_bytes=5):
        self.head = type("Head", (), {"headers": headers})()
        self.status = status
        self.body_bytes = body_bytes


def _environ(**extra):
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/a%0Ab?x=%22",
        "PATH_INFO": "/a\nb",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "x=%22",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.1",
    }
    environ.update(extra)
    return environ


def test_every_client_atom_is_escaped():
    from greenserve.worker.accesslog import AccessLog

    fmt = "%(u)s|%(U)s|%(a)s|%(f)s|%({x-h}i)s|%({x-o}o)s|%({x-b}o)s|%({my.key}e)s|%(s)s %(b)s"
    environ = _environ(
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"a\nb:pw").decode(),
        HTTP_USER_AGENT='ua"\x1b',
        HTTP_REFERER="\\",
        HTTP_X_H="\r",
        **{"my.key": "\u2028"},
    )
    response = _Response([("X-O", 'o"'), (b"x-b", b"\xff")])  # WSGI str, then ASGI bytes headers
    line = AccessLog(fmt).format(environ, response, 0.5)
    assert line == "a\\x0Ab|/a\\x0Ab|ua\\x22\\x1B|\\\\|\\x0D|o\\x22|\\xFF|\\xE2\\x80\\xA8|200 5"


def test_remote_user_set_by_the_application_is_escaped_too():
    from greenserve.worker.accesslog import AccessLog

    assert AccessLog("%(u)s").format(_environ(REMOTE_USER="x\ny"), _Response([]), 0) == "x\\x0Ay"


def test_access_fields_decode_utf8_and_keep_other_bytes():
    from greenserve.worker.accesslog import access_fields

    environ = _environ(
        SCRIPT_NAME="/api",
        PATH_INFO="/caf\u00c3\u00a9/\u00ff",  # UTF-8 e-acute, then a lone 0xFF byte
        HTTP_USER_AGENT="\u00c3\u00a9\u00c3",  # a UTF-8 sequence cut short
        **{"greenserve.request_id": "r-1"},
    )
    fields = access_fields(environ, _Response([], status=404, body_bytes=0), 0.1234567)
    assert fields == {
        "method": "GET",
        "path": "/api/caf\u00e9/\u00ff",
        "query": "x=%22",
        "status": 404,
        "bytes": 0,
        "duration": 0.123457,
        "remote": "10.0.0.1",
        "request_id": "r-1",
        "user_agent": "\u00e9\u00c3",
        "referer": None,
        "protocol": "HTTP/1.1",
    }
    assert tuple(fields) == logs.ACCESS_FIELDS


def test_access_log_records_carry_the_fields_only_when_asked():
    from greenserve.worker.accesslog import AccessLog

    records: list[logging.LogRecord] = []
    logger = logging.getLogger("greenserve.test-access")
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        AccessLog("%(r)s", logger).log(_environ(), _Response([]), 0.01)
        AccessLog("%(r)s", logger, fields=True).log(_environ(), _Response([]), 0.01)
    finally:
        logger.removeHandler(handler)
    plain, rich = records
    assert plain.getMessage() == rich.getMessage() == "GET /a%0Ab?x=%22 HTTP/1.1"
    assert not hasattr(plain, "path")
    assert rich.path == "/a\nb" and rich.status == 200  # type: ignore[attr-defined]
    data = json.loads(logs.JsonFormatter().format(rich))
    assert data["path"] == "/a\nb" and data["message"] == "GET /a%0Ab?x=%22 HTTP/1.1"
