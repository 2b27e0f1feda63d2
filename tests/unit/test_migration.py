"""Unit tests for what greenserve makes of gunicorn's habits: worker classes, refused flags, hints."""

from __future__ import annotations

import argparse
import logging
import os

import pytest

from greenserve import migration
from greenserve.cli import build_parser, paste_spec, suggest_option, to_argv
from greenserve.config import SETTINGS
from greenserve.errors import ConfigError
from greenserve.migration import DOC, UNSUPPORTED, worker_class_notice

# -- worker classes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "gevent",
        "gevent_wsgi",
        "gevent_pywsgi",
        "egg:gunicorn#gevent",
        "gunicorn.workers.ggevent.GeventWorker",
        "gunicorn.workers.ggevent.GeventPyWSGIWorker",
    ],
)
def test_gevent_worker_classes_are_noted(value: str) -> None:
    assert worker_class_notice(value) == (
        logging.INFO,
        f"worker class {value!r}: greenserve always runs gevent workers",
    )


def test_gevent_websocket_worker_is_noted_since_greenserve_provides_wsgi_websocket() -> None:
    value = "geventwebsocket.gunicorn.workers.GeventWebSocketWorker"
    level, message = worker_class_notice(value)
    assert level == logging.INFO
    assert message == (
        f"worker class {value!r}: greenserve always runs gevent workers, and gives WebSocket "
        "requests environ['wsgi.websocket'] itself (see docs/websockets.md)"
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("sync", "a blocking request does not hold the worker"),
        ("gunicorn.workers.sync.SyncWorker", "a blocking request does not hold the worker"),
        ("egg:gunicorn#sync", "a blocking request does not hold the worker"),
        ("gthread", "instead of a thread"),
        ("eventlet", "not eventlet"),
        ("gunicorn.workers.geventlet.EventletWorker", "not eventlet"),
        ("tornado", "not tornado.web.Application"),
        ("uvicorn.workers.UvicornWorker", "serves ASGI applications itself"),
        ("uvicorn_worker.UvicornH11Worker", "serves ASGI applications itself"),
        ("myproject.workers.Custom", "always runs its own gevent worker"),
    ],
)
def test_other_worker_classes_get_one_warning_naming_the_migration_guide(value: str, reason: str) -> None:
    level, message = worker_class_notice(value)
    assert level == logging.WARNING
    assert reason in message
    assert repr(value) in message
    assert message.endswith(f"(see {DOC})")
    assert "\n" not in message


# -- refused gunicorn flags -------------------------------------------------------------------------


def test_refused_flags_are_not_greenserve_flags() -> None:
    ours = {flag for meta in SETTINGS.values() for flag in (*meta.flags, meta.negative) if flag}
    for item in UNSUPPORTED:
        assert not ours & set(item.flags), item.name
        assert item.name not in SETTINGS, item.name
    assert not set(migration.RENAMED) & set(SETTINGS)
    assert set(migration.RENAMED.values()) <= set(SETTINGS)


@pytest.mark.parametrize("item", [item for item in UNSUPPORTED if item.flags], ids=lambda item: item.name)
def test_each_refused_flag_fails_with_one_line(item: migration.Unsupported, capsys) -> None:
    flag = item.flags[-1]
    argv = [flag, "4"] if item.takes_value else [flag]
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([*argv, "app:app"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("greenserve: error: ")
    assert flag in err


def test_threads_message_says_what_to_do() -> None:
    (threads,) = [item for item in UNSUPPORTED if item.name == "threads"]
    assert threads.message("--threads") == (
        "greenserve runs each request in a greenlet: --threads has no equivalent; "
        "raise --worker-connections (concurrent connections per worker) instead"
    )


# -- "did you mean" ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        ("--keepalive", "--keep-alive"),
        ("--keepalive=3", "--keep-alive"),
        ("--limit_request_line", "--limit-request-line"),
        ("--Workers", "--workers"),
        ("--keep", "--keep-alive"),  # abbreviations are refused, but named
        ("--worker", "--workers"),
        ("--acess-logfile", "--access-logfile"),
        ("-W", "-w"),
        ("--zzzzzz", None),
        ("-x", None),
    ],
)
def test_suggest_option(argument: str, expected: str | None) -> None:
    known = [option for action in build_parser()._actions for option in action.option_strings]
    assert suggest_option(argument, known) == expected


def test_unknown_option_error(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["--keepalive", "3", "app:app"])
    assert info.value.code == 2
    assert capsys.readouterr().err == (
        "greenserve: error: unrecognized option '--keepalive' (did you mean --keep-alive?)\n"
    )


def test_extra_positional_argument_error(capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["app:app", "other:app"])
    assert "unexpected argument 'other:app'" in capsys.readouterr().err


# -- booleans and to_argv -----------------------------------------------------------------------


def test_boolean_flags_and_their_negatives() -> None:
    parser = build_parser()
    assert parser.parse_args(["--reload"]).reload is True
    assert parser.parse_args(["--reload", "--no-reload"]).reload is False
    assert parser.parse_args(["--no-access-log"]).access_log is False
    assert "reload" not in vars(parser.parse_args([]))  # unset stays absent: lower sources apply


def test_help_shows_every_negative_flag() -> None:
    text = build_parser().format_help()
    for meta in SETTINGS.values():
        if meta.negative and meta.parse.__name__ == "parse_bool":
            assert f"{meta.long_flag}, {meta.negative}" in text


def test_to_argv_round_trips_through_the_parser() -> None:
    values = {"reload": False, "preload": True, "raw_env": ["A=1", "B=2"], "pidfile": "/run/x.pid"}
    argv = to_argv(values)
    assert argv == ["--no-reload", "--preload", "--env", "A=1", "--env", "B=2", "--pidfile", "/run/x.pid"]
    parsed = vars(build_parser().parse_args(argv))
    assert {name: parsed[name] for name in values} == values


# -- --paste ---------------------------------------------------------------------------------------


def test_paste_spec(tmp_path) -> None:
    ini = tmp_path / "production.ini"
    assert paste_spec(str(ini)) == f"paste.deploy:loadapp('config:{ini}')"
    assert paste_spec(f"{ini}#admin", ["debug=false", "x=a=b"]) == (
        f"paste.deploy:loadapp('config:{ini}#admin', global_conf={{'debug': 'false', 'x': 'a=b'}})"
    )


def test_paste_spec_is_absolute(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert f"'config:{tmp_path}{os.sep}app.ini'" in paste_spec("app.ini")


def test_paste_global_needs_key_value() -> None:
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        paste_spec("app.ini", ["novalue"])


def test_refuse_action_has_no_default() -> None:
    namespace = build_parser().parse_args([])
    assert not [name for name in vars(namespace) if name.startswith("_unsupported")]
    assert isinstance(namespace, argparse.Namespace)
