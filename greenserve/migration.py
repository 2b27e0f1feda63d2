"""What greenserve makes of gunicorn's habits.

Users migrating from gunicorn type its flags and keep its configuration
files. Each gunicorn setting greenserve does not have is listed here with
what to do instead, so that the command line, configuration files and
``GREENSERVE_*`` variables all answer with the same one line instead of a
bare "unknown". The worker classes gunicorn users pass with ``-k`` are
classified here too. ``docs/migrating-from-gunicorn.md`` has the full table.

Pure data and functions: imported by the master, must stay free of gevent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

#: Where every message below sends the user.
DOC = "docs/migrating-from-gunicorn.md"


@dataclass(frozen=True)
class Unsupported:
    """A gunicorn setting greenserve does not have."""

    #: gunicorn's name, as in ``gunicorn.conf.py``.
    name: str
    #: Its command-line flags; greenserve refuses them with ``instead``.
    flags: tuple[str, ...]
    #: Why, and what to do instead; ``{name}`` becomes the flag or name the user wrote.
    instead: str
    #: Whether the flag takes a value (``--threads 4``) or not (``--daemon``).
    takes_value: bool = True

    def message(self, written: str) -> str:
        return self.instead.format(name=written)


_LOGGERS = (
    "configure the greenserve.error and greenserve.access loggers with a --log-config file "
    "instead (docs/logging.md)"
)
_SYSLOG = (
    "greenserve logs to files or stderr: let journald or the container runtime collect stderr, "
    "or put a SysLogHandler in a --log-config file (docs/logging.md)"
)
_STRICT = "greenserve's HTTP parsing is always strict (docs/http.md): remove {name}"

UNSUPPORTED: tuple[Unsupported, ...] = (
    Unsupported(
        "threads",
        ("--threads",),
        "greenserve runs each request in a greenlet: {name} has no equivalent; "
        "raise --worker-connections (concurrent connections per worker) instead",
    ),
    Unsupported(
        "daemon",
        ("-D", "--daemon"),
        "greenserve does not daemonize: run it in the foreground under systemd, Docker or "
        "another supervisor (docs/deployment.md)",
        takes_value=False,
    ),
    Unsupported(
        "reload_engine",
        ("--reload-engine",),
        "greenserve's --reload polls modification times; there is no {name}: remove it",
    ),
    Unsupported(
        "spew",
        ("--spew",),
        "greenserve has no line tracer ({name}): use --log-level debug, or --single-process under a debugger",
        takes_value=False,
    ),
    Unsupported(
        "secure_scheme_headers",
        (),
        "greenserve takes the scheme from X-Forwarded-Proto and Forwarded: proto= sent by "
        "peers in --forwarded-allow-ips: remove {name}",
    ),
    Unsupported(
        "forwarder_headers",
        ("--forwarder-headers",),
        "greenserve never takes SCRIPT_NAME or PATH_INFO from request headers: "
        "use --root-path for a path prefix",
    ),
    Unsupported(
        "header_map",
        ("--header-map",),
        "greenserve always drops request headers whose names contain '_' (docs/http.md): remove {name}",
    ),
    Unsupported("permit_obsolete_folding", ("--permit-obsolete-folding",), _STRICT, takes_value=False),
    Unsupported("strip_header_spaces", ("--strip-header-spaces",), _STRICT, takes_value=False),
    Unsupported(
        "permit_unconventional_http_method",
        ("--permit-unconventional-http-method",),
        _STRICT,
        takes_value=False,
    ),
    Unsupported(
        "permit_unconventional_http_version",
        ("--permit-unconventional-http-version",),
        _STRICT,
        takes_value=False,
    ),
    Unsupported("casefold_http_method", ("--casefold-http-method",), _STRICT, takes_value=False),
    Unsupported(
        "paste",
        (),
        "name the application instead: app = \"paste.deploy:loadapp('config:/path/to/app.ini')\" "
        "(or use --paste on the command line)",
    ),
    Unsupported("raw_paste_global_conf", (), "use --paste-global on the command line, with --paste"),
    Unsupported(
        "tmp_upload_dir",
        (),
        "greenserve does not spool request bodies to disk: wsgi.input streams from the "
        "socket, bounded by --max-body-size; remove {name}",
    ),
    Unsupported(
        "logger_class",
        ("--logger-class",),
        "greenserve has no {name}: " + _LOGGERS,
    ),
    Unsupported(
        "enable_backlog_metric",
        ("--enable-backlog-metric",),
        "greenserve does not send gunicorn.backlog ({name}); the other statsd metrics keep gunicorn's "
        "names (--statsd-host, docs/operations.md)",
        takes_value=False,
    ),
    Unsupported("syslog", ("--log-syslog",), _SYSLOG, takes_value=False),
    Unsupported("syslog_addr", ("--log-syslog-to",), _SYSLOG),
    Unsupported("syslog_prefix", ("--log-syslog-prefix",), _SYSLOG),
    Unsupported("syslog_facility", ("--log-syslog-facility",), _SYSLOG),
    Unsupported(
        "disable_redirect_access_to_syslog",
        ("--disable-redirect-access-to-syslog",),
        "greenserve never sends the access log to syslog: remove {name}",
        takes_value=False,
    ),
    Unsupported(
        "enable_stdio_inheritance",
        ("-R", "--enable-stdio-inheritance"),
        "greenserve's workers always share the master's stdout and stderr (there is no "
        "daemon mode): remove {name}",
        takes_value=False,
    ),
    Unsupported(
        "ssl_version",
        ("--ssl-version",),
        "gunicorn ignores {name} since version 21 (it chose one protocol, not a minimum): remove "
        "it; greenserve accepts TLS 1.2 and newer, and --tls-min-version 1.3 accepts TLS 1.3 only",
    ),
    Unsupported(
        "suppress_ragged_eofs",
        ("--suppress-ragged-eofs",),
        "greenserve always treats a TLS connection closed without close_notify as closed: remove {name}",
        takes_value=False,
    ),
    Unsupported(
        "do_handshake_on_connect",
        ("--do-handshake-on-connect",),
        "greenserve always runs the TLS handshake as soon as a connection is accepted, in its "
        "own greenlet, within --header-timeout: remove {name}",
        takes_value=False,
    ),
    Unsupported(
        "control_socket_mode",
        ("--control-socket-mode",),
        "greenserve's control socket is always for its owner only (mode 0600, in a directory no "
        "other user can write to): remove {name} (docs/ctl.md)",
    ),
    *(
        Unsupported(hook, (), "gunicorn's {name} hook does not exist in greenserve (docs/hooks.md)")
        for hook in (
            "on_reload",
            "worker_int",
            "worker_abort",
            "pre_exec",
            "child_exit",
            "nworkers_changed",
        )
    ),
)

#: gunicorn's configuration-file names for settings greenserve names differently.
RENAMED: dict[str, str] = {
    "wsgi_app": "app",
    "keepalive": "keep_alive",
    "preload_app": "preload",
    "accesslog": "access_logfile",
    "errorlog": "error_logfile",
    "loglevel": "log_level",
    "access_log_format": "access_logformat",
    "logconfig": "log_config",
    "logconfig_json": "log_config",
    "logconfig_dict": "log_config",
}

_BY_NAME = {item.name: item for item in UNSUPPORTED}


def explain_name(name: str) -> str | None:
    """Why a setting name from a file or the environment is gunicorn's, not greenserve's."""
    key = name.replace("-", "_").lower()
    if key in RENAMED:
        return f"did you mean {RENAMED[key]!r}? {name!r} is gunicorn's name"
    item = _BY_NAME.get(key)
    return item.message(name) if item is not None else None


# -- worker classes -------------------------------------------------------------------------

#: ``-k`` values that name a gevent worker: what greenserve always runs.
GEVENT_WORKERS = frozenset(
    {
        "gevent",
        "gevent_wsgi",
        "gevent_pywsgi",
        "gunicorn.workers.ggevent.GeventWorker",
        "gunicorn.workers.ggevent.GeventPyWSGIWorker",
    }
)
#: gevent-websocket's workers: gevent, plus environ['wsgi.websocket'], which greenserve provides too.
GEVENT_WEBSOCKET_PREFIX = "geventwebsocket.gunicorn.workers."

_OTHER_WORKERS = {
    "sync": "greenserve runs each request in a greenlet, so a blocking request does not hold the worker",
    "gthread": "greenserve runs each request in a greenlet instead of a thread",
    "eventlet": "greenserve uses gevent, not eventlet: code that calls eventlet itself must move to gevent",
    "tornado": "greenserve serves WSGI and ASGI applications, not tornado.web.Application",
    "uvicorn": "greenserve serves ASGI applications itself, on an event loop thread in each gevent worker",
}


#: gunicorn's worker modules -> the short names above.
_GUNICORN_MODULES = {"sync": "sync", "gthread": "gthread", "geventlet": "eventlet", "gtornado": "tornado"}


def _short_name(value: str) -> str:
    """``egg:gunicorn#gevent`` -> ``gevent``: the spelling gunicorn also accepts."""
    if value.startswith("egg:") and "#" in value:
        return value.rpartition("#")[2]
    return value


def worker_class_notice(value: str) -> tuple[int, str]:
    """The log level and the one line to log for ``-k VALUE`` (greenserve ignores the class).

    The server starts in every case: greenserve has one worker, which serves
    WSGI and ASGI applications.
    """
    name = _short_name(value.strip())
    if name in GEVENT_WORKERS:
        return logging.INFO, f"worker class {value!r}: greenserve always runs gevent workers"
    if name.startswith(GEVENT_WEBSOCKET_PREFIX):
        return logging.INFO, (
            f"worker class {value!r}: greenserve always runs gevent workers, and gives WebSocket "
            "requests environ['wsgi.websocket'] itself (see docs/websockets.md)"
        )
    lowered = name.lower()
    if lowered.startswith(("uvicorn.", "uvicorn_worker.")):
        kind = "uvicorn"
    elif lowered.startswith("gunicorn.workers."):
        kind = _GUNICORN_MODULES.get(lowered.split(".")[2], "")
    else:
        kind = lowered
    reason = _OTHER_WORKERS.get(kind, "greenserve always runs its own gevent worker")
    return logging.WARNING, f"worker class {value!r} ignored: {reason} (see {DOC})"
