"""The one place every setting is declared.

Each field of :class:`Config` carries its command-line flags, help text,
section and parser as metadata. The argument parser, ``GREENSERVE_*``
environment variables, configuration files, ``--print-config`` and
``docs/settings.md`` are all generated from these declarations, so a
setting cannot exist in one of them and be missing from another.

This module is imported by the master: it must not import gevent, asyncio,
ssl or the application.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from greenserve import migration
from greenserve.addresses import parse_allow_list, parse_statsd_address
from greenserve.errors import ConfigError

ENV_PREFIX = "GREENSERVE_"

DEFAULT_ACCESS_LOG_FORMAT = '%(h)s - %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(D)sus'

#: Documented in this order, in ``--help`` and in ``docs/settings.md``.
SECTIONS = (
    "Application",
    "Server socket",
    "Worker processes",
    "HTTP",
    "Limits",
    "Timeouts",
    "Proxy",
    "TLS",
    "ASGI",
    "WebSockets",
    "Logging",
    "Operations",
    "Process",
    "Hooks",
)

#: Server hooks: set in a configuration file as functions (see docs/hooks.md).
HOOKS = (
    "on_starting",
    "when_ready",
    "pre_fork",
    "post_fork",
    "post_worker_init",
    "worker_exit",
    "on_exit",
    "pre_request",
    "post_request",
    "ssl_context",
)


# --------------------------------------------------------------------------
# Value parsers. Each takes a string (argv, environment) or an already typed
# value (configuration file) and returns the typed value or raises ValueError.


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected a boolean (true/false), got {value!r}")


def _number(kind: type, minimum: float | None = None, maximum: float | None = None) -> Callable:
    def parse(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(f"expected an integer, got {value!r}")
        try:
            number = kind(value) if not isinstance(value, str) else kind(value.strip())
        except (TypeError, ValueError, OverflowError):
            raise ValueError(
                f"expected {'an integer' if kind is int else 'a number'}, got {value!r}"
            ) from None
        if kind is float and not math.isfinite(number):
            raise ValueError(f"expected a finite number, got {value!r}")
        if minimum is not None and number < minimum:
            raise ValueError(f"must be at least {minimum}, got {number}")
        if maximum is not None and number > maximum:
            raise ValueError(f"must be at most {maximum}, got {number}")
        return number

    parse.__name__ = kind.__name__
    return parse


_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(value: Any) -> int:
    """Bytes, with an optional binary suffix: ``512``, ``64K``, ``100M``, ``1G``."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        match = _SIZE_RE.match(str(value))
        if not match:
            raise ValueError(f"expected a size such as 1048576, 64K, 100M or 1G, got {value!r}")
        number = int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    if number < 0:
        raise ValueError(f"must not be negative, got {number}")
    return number


def parse_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def parse_list(value: Any) -> tuple[str, ...]:
    """A list from a config file, or a comma/space separated string."""
    if isinstance(value, str):
        return tuple(item for item in re.split(r"[,\s]+", value.strip()) if item)
    if isinstance(value, Iterable):
        items = tuple(value)
        for item in items:
            if not isinstance(item, str):
                raise ValueError(f"expected a list of strings, got {item!r}")
        return items
    raise ValueError(f"expected a list of strings, got {value!r}")


def parse_umask(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = str(value).strip()
        if text.lower() in ("", "none"):
            return None
        try:
            number = int(text, 8) if not text.lower().startswith("0x") else int(text, 16)
        except ValueError:
            raise ValueError(f"expected an octal umask such as 022, got {value!r}") from None
    if not 0 <= number <= 0o777:
        raise ValueError(f"umask must be between 000 and 777, got {oct(number)}")
    return number


def choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return text

    parse.choices = choices  # type: ignore[attr-defined]
    return parse


def _limit(minimum: int, maximum: int) -> Callable[[Any], int]:
    """A header size or count limit; gunicorn's ``0`` (unlimited) gets a clear refusal."""
    number = _number(int, minimum, maximum)

    def parse(value: Any) -> int:
        if str(value).strip() == "0":
            raise ValueError(
                f"0 (gunicorn's 'unlimited') is not accepted: greenserve bounds every input; "
                f"give the largest value you accept, at most {maximum}"
            )
        return int(number(value))

    parse.__name__ = "int"
    return parse


_CERT_REQS = {"0": "none", "1": "optional", "2": "required"}


def parse_cert_reqs(value: Any) -> str:
    """``none``/``optional``/``required``, or gunicorn's ``0``/``1``/``2`` (ssl.CERT_* numbers)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    text = str(value).strip().lower()
    text = _CERT_REQS.get(text, text)
    if text not in _CERT_REQS.values():
        raise ValueError(f"expected none, optional or required (or 0, 1, 2), got {value!r}")
    return text


parse_cert_reqs.choices = tuple(_CERT_REQS.values())  # type: ignore[attr-defined]


_TLS_VERSIONS = {
    **dict.fromkeys(("1.2", "tlsv1.2", "tlsv1_2"), "1.2"),
    **dict.fromkeys(("1.3", "tlsv1.3", "tlsv1_3"), "1.3"),
}


def parse_tls_version(value: Any) -> str:
    """``1.2`` or ``1.3`` (``TLSv1.2``, ``TLSv1_3``... accepted: the names of ssl.TLSVersion and OpenSSL)."""
    text = str(value).strip().lower()
    if text not in _TLS_VERSIONS:
        raise ValueError(f"expected 1.2 or 1.3, got {value!r}")
    return _TLS_VERSIONS[text]


parse_tls_version.choices = ("1.2", "1.3")  # type: ignore[attr-defined]

#: What an OpenSSL cipher list is made of: names, ``:`` ``,`` or spaces between them,
#: ``!`` ``-`` ``+`` before them, ``@STRENGTH``, ``@SECLEVEL=N``.
_CIPHER_LIST = re.compile(r"[A-Za-z0-9_.+!@=:, -]{1,2000}")


def parse_ciphers(value: Any) -> str:
    """An OpenSSL cipher list; whether OpenSSL knows any cipher in it is checked as a worker starts."""
    text = parse_str(value).strip()
    if text and not _CIPHER_LIST.fullmatch(text):
        raise ValueError(
            f"expected an OpenSSL cipher list such as ECDHE+AESGCM:!aNULL (letters, digits and "
            f"_ . + ! @ = : , - only), got {value!r}"
        )
    return text


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")


def parse_env_name(value: Any) -> str:
    """The name of an environment variable (not its value)."""
    text = parse_str(value).strip()
    if not text:
        return ""
    if not _ENV_NAME.fullmatch(text):
        raise ValueError(f"expected the name of an environment variable such as KEY_PASSWORD, got {value!r}")
    if text.upper().startswith(ENV_PREFIX):
        raise ValueError(
            f"{text}: {ENV_PREFIX}* variables are greenserve's settings; give the password another name"
        )
    return text


def parse_worker_class(value: Any) -> str:
    """gunicorn's ``-k`` value: kept only to say what greenserve makes of it."""
    text = parse_str(value).strip()
    if not text or len(text) > 200 or not text.isprintable():
        raise ValueError(f"expected a worker class name such as gevent, got {value!r}")
    return text


def parse_env(value: Any) -> tuple[str, ...]:
    """``KEY=VALUE`` items (gunicorn's ``raw_env``); a string is split on commas only."""
    if isinstance(value, str):
        items: tuple[str, ...] = tuple(item.strip() for item in value.split(",") if item.strip())
    else:
        items = parse_list(value)
    for item in items:
        key, sep, rest = item.partition("=")
        if not sep or not key or not key.isprintable() or key != key.strip():
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        if "\0" in rest:
            raise ValueError(f"{key}: a value cannot contain a NUL character")
        if key.upper().startswith(ENV_PREFIX):
            raise ValueError(f"{key}: give greenserve's own settings directly, not through the environment")
    return items


def parse_ip_list(value: Any) -> tuple[str, ...]:
    """A list of IP addresses, networks (``10.0.0.0/8``) or ``*``, each checked."""
    return parse_allow_list(parse_list(value))


_PROXY_PROTOCOL_MODES = ("off", "v1", "v2", "auto")
#: gunicorn's proxy_protocol was a boolean before it took a version.
_PROXY_PROTOCOL_ALIASES = {
    "false": "off",
    "no": "off",
    "0": "off",
    "true": "auto",
    "yes": "auto",
    "1": "auto",
}


def parse_proxy_protocol(value: Any) -> str:
    """``off``, ``v1``, ``v2`` or ``auto``; a boolean means ``auto``/``off``."""
    if isinstance(value, bool):
        return "auto" if value else "off"
    text = str(value).strip().lower()
    text = _PROXY_PROTOCOL_ALIASES.get(text, text)
    if text not in _PROXY_PROTOCOL_MODES:
        raise ValueError(f"expected one of {', '.join(_PROXY_PROTOCOL_MODES)}, got {value!r}")
    return text


def parse_hook(value: Any) -> Callable | None:
    if value is None or callable(value):
        return value
    raise ValueError("hooks are functions, set in a configuration file (greenserve.conf.py)")


def hook_taking(*params: str) -> Callable[[Any], Callable | None]:
    """A hook greenserve calls with ``params``: a function that cannot take them is refused now.

    A hook copied from gunicorn with another signature (``worker_exit(server,
    worker)``) would otherwise fail only when it is called, in a worker or at
    shutdown. Checking the signature runs none of the hook's code.
    """

    def parse(value: Any) -> Callable | None:
        function = parse_hook(value)
        if function is None:
            return None
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):
            return function  # a builtin or C callable: nothing to check
        try:
            signature.bind(*params)
        except TypeError as exc:
            raise ValueError(
                f"{getattr(function, '__name__', 'the function')}{signature} cannot be called with "
                f"greenserve's arguments ({', '.join(params)}): {exc}"
            ) from None
        return function

    parse.__name__ = "parse_hook"
    return parse


def parse_log_config(value: Any) -> str | dict[str, Any]:
    """A path, or (in a configuration file) a logging.config.dictConfig dictionary."""
    if value is None:
        return ""
    if isinstance(value, Mapping):
        return dict(value)
    return parse_str(value)


def parse_optional_str(value: Any) -> str:
    if value is None:
        return ""
    return parse_str(value)


_FIELD_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: Fields the server, the framing or the hop owns: never a request id's.
_RESERVED_FIELDS = frozenset(
    (
        "connection",
        "content-length",
        "date",
        "host",
        "keep-alive",
        "proxy-connection",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    )
)


def parse_header_name(value: Any) -> str:
    """A header field name (a token, RFC 9110 5.1) that the server does not manage itself."""
    text = parse_str(value).strip()
    if _FIELD_NAME.fullmatch(text) is None:
        raise ValueError(f"expected a header name such as X-Request-ID, got {value!r}")
    if text.lower() in _RESERVED_FIELDS:
        raise ValueError(f"{text} is managed by the server, it cannot carry request ids")
    return text


def parse_control_socket(value: Any) -> str:
    """``auto`` (the default location), ``off`` (``""``), or the socket's path."""
    if value is None:
        return ""
    text = parse_str(value).strip()
    if text.lower() in ("", "off", "none", "false", "no", "0"):
        return ""
    if text.lower() == "auto":
        return "auto"
    if "\0" in text:
        raise ValueError("a socket path cannot contain a NUL character")
    return text


def parse_statsd_host(value: Any) -> str:
    """``--statsd-host``: ``""`` (off) or an address :func:`parse_statsd_address` accepts."""
    if value is None:
        return ""
    text = parse_str(value).strip()
    if text and isinstance(parse_statsd_address(text), str) and os.name != "posix":
        raise ValueError("a Unix socket (unix:PATH) is only available on POSIX systems")
    return text


def _statsd_text(value: str, what: str, forbidden: str) -> str:
    """ASCII without control characters or ``forbidden`` ones: it is pasted into each statsd line."""
    bad = next((c for c in value if not (c.isascii() and c.isprintable()) or c in forbidden), None)
    if bad is not None:
        raise ValueError(f"{what} {value!r} cannot contain {bad!r}")
    return value


def parse_statsd_prefix(value: Any) -> str:
    if value is None:
        return ""
    return _statsd_text(parse_str(value).strip(), "the prefix", " :|@#")


def parse_dogstatsd_tags(value: Any) -> str:
    """``k:v`` tags, comma-separated (or a list in a configuration file), kept as one string."""
    if value is None:
        return ""
    items = value.split(",") if isinstance(value, str) else parse_list(value)
    tags = [item.strip() for item in items if item.strip()]
    for tag in tags:
        _statsd_text(tag, "the tag", " |,")
    return ",".join(tags)


def _web_concurrency() -> int:
    raw = os.environ.get("WEB_CONCURRENCY", "").strip()
    if raw:
        try:
            return max(1, int(raw))
        except ValueError:
            raise ConfigError(f"WEB_CONCURRENCY must be an integer, got {raw!r}") from None
    return 1


def _default_bind() -> tuple[str, ...]:
    port = os.environ.get("PORT", "").strip()
    if port.isdigit():
        return (f"0.0.0.0:{port}",)
    return ("127.0.0.1:8000",)


# --------------------------------------------------------------------------
# Declarations.


@dataclass(frozen=True)
class Setting:
    """How one :class:`Config` field is exposed to users."""

    flags: tuple[str, ...]
    help: str
    section: str
    parse: Callable[[Any], Any]
    metavar: str | None = None
    #: ``True``: each occurrence of the flag adds one item (``-b a -b b``).
    append: bool = False
    #: For booleans, the flag that sets ``False`` (``--no-access-log``).
    negative: str | None = None
    #: Shown in docs instead of the computed default.
    default_doc: str | None = None
    positional: bool = False

    @property
    def long_flag(self) -> str:
        """The flag greenserve itself writes and names in messages: the first long one.

        Later long flags are other spellings (gunicorn's ``--pid`` for ``--pidfile``).
        """
        return next((flag for flag in self.flags if flag.startswith("--")), "")


def setting(
    default: Any = dataclasses.MISSING,
    *,
    flags: Sequence[str] = (),
    help: str,
    section: str,
    parse: Callable[[Any], Any],
    default_factory: Callable[[], Any] | None = None,
    **options: Any,
) -> Any:
    flags = tuple(flags)
    if parse is parse_bool and "negative" not in options:
        # Every boolean can be switched off on the command line too: --reload, --no-reload.
        options["negative"] = "--no-" + next(f for f in flags if f.startswith("--")).removeprefix("--")
    meta = Setting(flags, help, section, parse, **options)
    if default_factory is not None:
        return field(default_factory=default_factory, metadata={"setting": meta})
    return field(default=default, metadata={"setting": meta})


@dataclass(frozen=True)
class Config:
    """Every greenserve setting, resolved and validated. Immutable and picklable."""

    # Application -------------------------------------------------------
    app: str = setting(
        "",
        section="Application",
        parse=parse_str,
        positional=True,
        metavar="APP",
        help="The application: 'module:attr', 'module' (attr defaults to 'application') "
        "or 'module:factory(args)' to call a factory with literal arguments.",
    )
    chdir: str = setting(
        "",
        flags=["--chdir"],
        section="Application",
        parse=parse_str,
        metavar="DIR",
        help="Change to this directory before loading the application.",
    )
    pythonpath: tuple[str, ...] = setting(
        (),
        flags=["--pythonpath"],
        section="Application",
        parse=parse_list,
        metavar="DIRS",
        help="Comma-separated directories to prepend to sys.path before loading the application.",
    )
    raw_env: tuple[str, ...] = setting(
        (),
        flags=["-e", "--env"],
        section="Application",
        parse=parse_env,
        append=True,
        metavar="KEY=VALUE",
        help="Set an environment variable for the application (repeatable), as gunicorn's "
        "--env does: set in the master before any worker starts, so the application sees it "
        "when it is imported. Comma-separated in GREENSERVE_RAW_ENV.",
    )

    # Server socket -------------------------------------------------------
    bind: tuple[str, ...] = setting(
        flags=["-b", "--bind"],
        default_factory=_default_bind,
        section="Server socket",
        parse=parse_list,
        append=True,
        metavar="ADDRESS",
        default_doc="127.0.0.1:8000 (0.0.0.0:$PORT when PORT is set)",
        help="Address to listen on; repeat for several: 'HOST:PORT', '[::1]:PORT', "
        "'unix:/path/to.sock' or 'fd://N' for an inherited file descriptor. Port 0 picks a free port.",
    )
    backlog: int = setting(
        2048,
        flags=["--backlog"],
        section="Server socket",
        parse=_number(int, 1, 65535),
        metavar="N",
        help="Maximum number of connections waiting to be accepted (listen() backlog).",
    )
    reuse_port: bool = setting(
        False,
        flags=["--reuse-port"],
        section="Server socket",
        parse=parse_bool,
        help="Set SO_REUSEPORT on TCP listeners, so several servers can bind the same port.",
    )
    umask: int | None = setting(
        None,
        flags=["-m", "--umask"],
        section="Server socket",
        parse=parse_umask,
        metavar="OCTAL",
        default_doc="inherited",
        help="Umask applied when creating Unix sockets, e.g. 007 for a socket only the "
        "owner and group can connect to.",
    )

    # Worker processes ----------------------------------------------------
    worker_class: str = setting(
        "gevent",
        flags=["-k", "--worker-class"],
        section="Worker processes",
        parse=parse_worker_class,
        metavar="CLASS",
        help="Accepted for gunicorn compatibility: greenserve always runs gevent workers, which "
        "serve WSGI and ASGI applications. gevent's classes are noted in the log; any other "
        "(sync, gthread, uvicorn.workers.UvicornWorker, ...) gets a warning, and the server starts.",
    )
    workers: int = setting(
        flags=["-w", "--workers"],
        default_factory=_web_concurrency,
        section="Worker processes",
        parse=_number(int, 1, 1024),
        metavar="N",
        default_doc="$WEB_CONCURRENCY or 1",
        help="Number of worker processes.",
    )
    single_process: bool = setting(
        False,
        flags=["--single-process"],
        section="Worker processes",
        parse=parse_bool,
        help="Serve from this process with no master (always the case on Windows).",
    )
    worker_connections: int = setting(
        1000,
        flags=["--worker-connections"],
        section="Worker processes",
        parse=_number(int, 1, 1_000_000),
        metavar="N",
        help="Maximum concurrent connections per worker. When full, idle keep-alive "
        "connections are closed to make room; otherwise new connections wait in the backlog.",
    )

    timeout: float = setting(
        30.0,
        flags=["-t", "--timeout"],
        section="Worker processes",
        parse=_number(float, 0, 86400),
        metavar="SECONDS",
        help="A worker whose event loop has not run for this long (a request blocking the "
        "hub, e.g. spinning the CPU) is sent SIGABRT, logs every greenlet's stack, and is "
        "replaced. 0 disables the check.",
    )
    request_timeout: float = setting(
        0.0,
        flags=["--request-timeout"],
        section="Worker processes",
        parse=_number(float, 0, 86400),
        metavar="SECONDS",
        default_doc="0 (off)",
        help="Cancel a request still running after this long: its greenlet gets an "
        "exception and the client a 504 when nothing was sent yet. 0 disables it.",
    )
    max_requests: int = setting(
        0,
        flags=["--max-requests"],
        section="Worker processes",
        parse=_number(int, 0, 2**31),
        metavar="N",
        default_doc="0 (off)",
        help="Retire a worker gracefully after this many requests (a memory-leak safety "
        "net); its replacement starts first. 0 disables it.",
    )
    max_requests_jitter: int = setting(
        0,
        flags=["--max-requests-jitter"],
        section="Worker processes",
        parse=_number(int, 0, 2**31),
        metavar="N",
        help="Add a random 0..N to --max-requests per worker, so workers do not all retire at once.",
    )
    gc_threshold: int = setting(
        10_000,
        flags=["--gc-threshold"],
        section="Worker processes",
        parse=_number(int, 0, 2**31),
        metavar="N",
        help="Once a worker is ready, set Python's first-generation garbage-collection "
        "threshold to N (Python's own is 700), unless the application set one itself. With "
        "many requests in flight, 700 runs a collection every few requests that finds nothing "
        "to free. 0 leaves the interpreter's setting alone.",
    )
    preload: bool = setting(
        False,
        flags=["--preload"],
        section="Worker processes",
        parse=parse_bool,
        help="Import the application in the master, after gevent has patched the standard "
        "library there, then fork workers that share its memory. Faster boots and "
        "import errors at startup; a reload (HUP) cannot pick up code changes.",
    )
    reload: bool = setting(
        False,
        flags=["--reload"],
        section="Worker processes",
        parse=parse_bool,
        help="Development: restart the workers when a Python file under the application "
        "directory (or a --reload-extra-file) changes.",
    )
    reload_extra_files: tuple[str, ...] = setting(
        (),
        flags=["--reload-extra-file"],
        section="Worker processes",
        parse=parse_list,
        append=True,
        metavar="PATH",
        help="Also restart the workers when this file changes (repeatable), e.g. templates.",
    )

    # HTTP ----------------------------------------------------------------
    http: str = setting(
        "auto",
        flags=["--http"],
        section="HTTP",
        parse=choice("auto", "h11", "httptools"),
        metavar="{auto,h11,httptools}",
        help="HTTP/1.1 parser: 'httptools' (llhttp, fast), 'h11' (pure Python, strict "
        "reference) or 'auto' (httptools when importable).",
    )
    server_header: str = setting(
        "greenserve",
        flags=["--server-header"],
        section="HTTP",
        parse=parse_str,
        metavar="NAME",
        negative="--no-server-header",
        help="Value of the Server response header (when the application sets none). "
        "--no-server-header sends none.",
    )
    root_path: str = setting(
        "",
        flags=["--root-path"],
        section="HTTP",
        parse=parse_str,
        metavar="PATH",
        help="SCRIPT_NAME of the application when it is mounted below a path prefix, "
        "e.g. /api. Request paths starting with it have it moved from PATH_INFO to SCRIPT_NAME.",
    )
    sendfile: bool = setting(
        True,
        flags=["--sendfile"],
        section="HTTP",
        parse=parse_bool,
        help="Send files returned through wsgi.file_wrapper with sendfile(2) on plain TCP "
        "connections. --no-sendfile reads and sends them instead (for file systems where "
        "sendfile is broken, such as some virtual machine shared folders).",
    )

    # Limits --------------------------------------------------------------
    limit_request_line: int = setting(
        4094,
        flags=["--limit-request-line"],
        section="Limits",
        parse=_limit(16, 1024 * 1024),
        metavar="BYTES",
        help="Maximum size of the request line (method, target, version); longer gets 414.",
    )
    limit_request_fields: int = setting(
        100,
        flags=["--limit-request-fields"],
        section="Limits",
        parse=_limit(1, 32768),
        metavar="N",
        help="Maximum number of request header fields; more gets 431.",
    )
    limit_request_field_size: int = setting(
        8190,
        flags=["--limit-request-field-size", "--limit-request-field_size"],
        section="Limits",
        parse=_limit(16, 1024 * 1024),
        metavar="BYTES",
        help="Maximum size of one request header field (name and value); larger gets 431.",
    )
    max_body_size: int = setting(
        100 * 1024 * 1024,
        flags=["--max-body-size"],
        section="Limits",
        parse=parse_size,
        metavar="SIZE",
        default_doc="100M",
        help="Maximum request body size (e.g. 10M); larger gets 413. 0 means no limit.",
    )

    # Timeouts ------------------------------------------------------------
    keep_alive: float = setting(
        5.0,
        flags=["--keep-alive"],
        section="Timeouts",
        parse=_number(float, 0, 3600),
        metavar="SECONDS",
        help="How long an idle keep-alive connection waits for its next request. 0 disables keep-alive.",
    )
    header_timeout: float = setting(
        10.0,
        flags=["--header-timeout"],
        section="Timeouts",
        parse=_number(float, 0.1, 3600),
        metavar="SECONDS",
        help="Time a client has to send a whole request head once it has started one "
        "(defends against slowloris); exceeded gets 408 and a close.",
    )
    client_timeout: float = setting(
        60.0,
        flags=["--client-timeout"],
        section="Timeouts",
        parse=_number(float, 0.1, 3600),
        metavar="SECONDS",
        help="Longest wait for a client to send the next piece of a request body, or to "
        "accept the next piece of a response, before the connection is dropped.",
    )
    graceful_timeout: float = setting(
        30.0,
        flags=["--graceful-timeout"],
        section="Timeouts",
        parse=_number(float, 0, 86400),
        metavar="SECONDS",
        help="On SIGTERM/SIGINT, how long in-flight requests may run before they are cut off.",
    )

    # Proxy ---------------------------------------------------------------
    forwarded_allow_ips: tuple[str, ...] = setting(
        ("127.0.0.1", "::1"),
        flags=["--forwarded-allow-ips"],
        section="Proxy",
        parse=parse_ip_list,
        metavar="IPS",
        help="Comma-separated proxy addresses and networks (e.g. 10.0.0.0/8), or '*', whose "
        "X-Forwarded-For, X-Forwarded-Proto and Forwarded headers are trusted to set "
        "REMOTE_ADDR and wsgi.url_scheme. Peers on Unix sockets are trusted too, unless "
        "--no-trust-unix-peers.",
    )
    proxy_headers: bool = setting(
        True,
        flags=["--proxy-headers"],
        section="Proxy",
        parse=parse_bool,
        help="Apply forwarded headers from trusted proxies (see --forwarded-allow-ips).",
    )
    forwarded_host: bool = setting(
        False,
        flags=["--forwarded-host"],
        section="Proxy",
        parse=parse_bool,
        negative="--no-forwarded-host",
        help="Also take the Host (HTTP_HOST, SERVER_NAME, SERVER_PORT) from a trusted proxy's "
        "X-Forwarded-Host (or Forwarded: host=). Only when the proxy sets it itself: one that "
        "passes a client's X-Forwarded-Host through lets clients choose the host of every URL "
        "the application builds.",
    )
    forwarded_port: bool = setting(
        False,
        flags=["--forwarded-port"],
        section="Proxy",
        parse=parse_bool,
        negative="--no-forwarded-port",
        help="Also take SERVER_PORT (and the port of HTTP_HOST) from a trusted proxy's X-Forwarded-Port.",
    )
    forwarded_prefix: bool = setting(
        False,
        flags=["--forwarded-prefix"],
        section="Proxy",
        parse=parse_bool,
        negative="--no-forwarded-prefix",
        help="Prepend a trusted proxy's X-Forwarded-Prefix (the path prefix it removed) to "
        "SCRIPT_NAME, or to the ASGI root_path and path.",
    )
    trust_unix_peers: bool = setting(
        True,
        flags=["--trust-unix-peers"],
        section="Proxy",
        parse=parse_bool,
        negative="--no-trust-unix-peers",
        help="Count every peer of a Unix-socket listener as a trusted proxy, for "
        "--forwarded-allow-ips and --proxy-allow-from (only local processes allowed to open the "
        "socket file can connect). --no-trust-unix-peers ignores their forwarded headers and "
        "refuses their PROXY protocol headers.",
    )
    proxy_protocol: str = setting(
        "off",
        flags=["--proxy-protocol"],
        section="Proxy",
        parse=parse_proxy_protocol,
        metavar="{off,v1,v2,auto}",
        help="Read a PROXY protocol header (HAProxy send-proxy, AWS NLB) at the start of each "
        "connection from --proxy-allow-from peers: v1 (text) or v2 (binary) only, or auto for "
        "either. From those peers it is required; other peers may not send one.",
    )
    proxy_allow_ips: tuple[str, ...] = setting(
        ("127.0.0.1", "::1"),
        flags=["--proxy-allow-from"],
        section="Proxy",
        parse=parse_ip_list,
        metavar="IPS",
        help="Comma-separated addresses and networks, or '*', of the load balancers that send "
        "a PROXY protocol header (with --proxy-protocol). Peers on Unix sockets count as "
        "allowed unless --no-trust-unix-peers.",
    )

    # TLS -----------------------------------------------------------------
    certfile: str = setting(
        "",
        flags=["--certfile"],
        section="TLS",
        parse=parse_str,
        metavar="PATH",
        help="PEM certificate (chain) file; enables HTTPS on every TCP listener.",
    )
    keyfile: str = setting(
        "",
        flags=["--keyfile"],
        section="TLS",
        parse=parse_str,
        metavar="PATH",
        help="PEM private key file (defaults to the certificate file).",
    )
    ca_certs: str = setting(
        "",
        flags=["--ca-certs"],
        section="TLS",
        parse=parse_str,
        metavar="PATH",
        help="CA bundle used to verify client certificates (with --cert-reqs).",
    )
    cert_reqs: str = setting(
        "none",
        flags=["--cert-reqs"],
        section="TLS",
        parse=parse_cert_reqs,
        metavar="{none,optional,required}",
        help="Whether clients must present a certificate signed by --ca-certs. gunicorn's "
        "numbers are accepted too: 0 (none), 1 (optional), 2 (required). The application sees "
        "the certificate (SSL_CLIENT_* environ keys, the ASGI tls extension).",
    )
    keyfile_password_file: str = setting(
        "",
        flags=["--keyfile-password-file"],
        section="TLS",
        parse=parse_str,
        metavar="PATH",
        help="File holding the password of an encrypted private key, on its first line (read "
        "before the workers drop privileges, so it may be readable by root only). The password "
        "itself is never a setting, so it is never on a command line or in --print-config.",
    )
    keyfile_password_env: str = setting(
        "",
        flags=["--keyfile-password-env"],
        section="TLS",
        parse=parse_env_name,
        metavar="NAME",
        help="Name of an environment variable holding the password of an encrypted private "
        "key. Each worker removes it from its environment once read, so the application does "
        "not inherit it.",
    )
    tls_min_version: str = setting(
        "1.2",
        flags=["--tls-min-version"],
        section="TLS",
        parse=parse_tls_version,
        metavar="{1.2,1.3}",
        help="Oldest TLS version accepted: 1.2 (Python's default) or 1.3. Older clients fail the handshake.",
    )
    ciphers: str = setting(
        "",
        flags=["--ciphers"],
        section="TLS",
        parse=parse_ciphers,
        metavar="LIST",
        default_doc="Python's default list",
        help="OpenSSL cipher list for TLS 1.2 (e.g. ECDHE+AESGCM:ECDHE+CHACHA20), as gunicorn's "
        "--ciphers. TLS 1.3 suites are not affected. A list that matches no cipher stops the "
        "server at start-up.",
    )
    ssl_context: Callable | None = setting(
        None,
        section="TLS",
        parse=hook_taking("config", "default_ssl_context_factory"),
        help="ssl_context(config, default_ssl_context_factory), gunicorn's hook: returns the "
        "ssl.SSLContext to serve with, usually default_ssl_context_factory() (the context the "
        "settings describe) changed as needed. Called once per worker, before it drops "
        "privileges; needs certfile.",
    )

    # ASGI ----------------------------------------------------------------
    interface: str = setting(
        "auto",
        flags=["--interface"],
        section="ASGI",
        parse=choice("auto", "wsgi", "asgi"),
        metavar="{auto,wsgi,asgi}",
        help="The application's interface. 'auto' recognises ASGI 3 (async def app(scope, "
        "receive, send)) and ASGI 2 callables; everything else is served as WSGI.",
    )
    lifespan: str = setting(
        "auto",
        flags=["--lifespan"],
        section="ASGI",
        parse=choice("auto", "on", "off"),
        metavar="{auto,on,off}",
        help="ASGI lifespan events: 'on' requires them (a failed startup stops the server), "
        "'auto' uses them when the application supports them, 'off' never sends them.",
    )
    loop: str = setting(
        "auto",
        flags=["--loop"],
        section="ASGI",
        parse=choice("auto", "asyncio", "uvloop"),
        metavar="{auto,asyncio,uvloop}",
        help="Event loop of each worker's ASGI thread. 'auto' and 'asyncio': asyncio on epoll, "
        "where code the application runs in threads (FastAPI def endpoints, run_in_executor, "
        "sync_to_async) gets greenlets. 'uvloop': faster for purely async applications, but "
        "refuses threads started from the loop.",
    )
    asgi_cancel_grace: float = setting(
        1.0,
        flags=["--asgi-cancel-grace"],
        section="ASGI",
        parse=_number(float, 0, 3600),
        metavar="SECONDS",
        help="When the client goes away or --request-timeout expires, an ASGI application's "
        "receive() returns http.disconnect at once, and its task is cancelled if it still runs "
        "after this long (0: at once).",
    )

    # WebSockets (WSGI and ASGI) ---------------------------------------------
    ws_max_size: int = setting(
        16 * 1024 * 1024,
        flags=["--ws-max-size"],
        section="WebSockets",
        parse=parse_size,
        metavar="SIZE",
        default_doc="16M",
        help="Largest WebSocket message accepted, after decompression; a bigger one closes the "
        "connection with 1009.",
    )
    ws_ping_interval: float = setting(
        20.0,
        flags=["--ws-ping-interval"],
        section="WebSockets",
        parse=_number(float, 0, 86400),
        metavar="SECONDS",
        help="Send a WebSocket ping after this long without traffic (0: never).",
    )
    ws_ping_timeout: float = setting(
        20.0,
        flags=["--ws-ping-timeout"],
        section="WebSockets",
        parse=_number(float, 0, 86400),
        metavar="SECONDS",
        help="Close a WebSocket whose peer does not answer a ping within this long (0: wait forever).",
    )
    ws_per_message_deflate: bool = setting(
        True,
        flags=["--ws-per-message-deflate"],
        section="WebSockets",
        parse=parse_bool,
        negative="--no-ws-per-message-deflate",
        help="Offer per-message compression (RFC 7692) to WebSocket clients that ask for it; "
        "a compressed message may not inflate beyond --ws-max-size.",
    )

    # Logging -------------------------------------------------------------
    log_level: str = setting(
        "info",
        flags=["--log-level"],
        section="Logging",
        parse=choice("debug", "info", "warning", "error", "critical"),
        metavar="LEVEL",
        help="Error log level: debug, info, warning, error or critical.",
    )
    error_logfile: str = setting(
        "-",
        flags=["--error-logfile", "--log-file"],
        section="Logging",
        parse=parse_str,
        metavar="PATH",
        help="Where the error log goes; '-' is stderr.",
    )
    capture_output: bool = setting(
        False,
        flags=["--capture-output"],
        section="Logging",
        parse=parse_bool,
        help="Send the standard output and error of the master and workers (print(), "
        "tracebacks written to stderr) to the error log file; with --error-logfile -, "
        "standard output goes to stderr.",
    )
    access_log: bool = setting(
        True,
        flags=["--access-log"],
        section="Logging",
        parse=parse_bool,
        help="Log one line per request (costs a little throughput; off in benchmarks).",
    )
    access_logfile: str = setting(
        "-",
        flags=["--access-logfile"],
        section="Logging",
        parse=parse_str,
        metavar="PATH",
        help="Where the access log goes; '-' is stderr.",
    )
    access_logformat: str = setting(
        DEFAULT_ACCESS_LOG_FORMAT,
        flags=["--access-logformat"],
        section="Logging",
        parse=parse_str,
        metavar="FORMAT",
        help="Access log line with gunicorn's atoms: %(h)s remote address, %(r)s request line, "
        "%(s)s status, %(b)s body bytes, %(D)s microseconds, %({header}i)s request header, "
        "%({header}o)s response header, ... (see docs/logging.md).",
    )

    log_format: str = setting(
        "text",
        flags=["--log-format"],
        section="Logging",
        parse=choice("text", "json"),
        metavar="{text,json}",
        help="Both logs as 'text' lines or as 'json' lines: one JSON object per line with "
        "time, level, pid, worker, message (and method, path, status, duration... for the "
        "access log). See docs/logging.md.",
    )
    log_config: str | dict[str, Any] = setting(
        "",
        flags=["--log-config-json", "--log-config"],
        section="Logging",
        parse=parse_log_config,
        metavar="PATH",
        help="A logging configuration file, applied in the master and in every worker: a "
        "logging.config.dictConfig dictionary in .json, .toml or .py (a LOGGING or "
        "logconfig_dict variable), or a fileConfig .ini file. Loggers it configures "
        "(greenserve.error, greenserve.access) get none of greenserve's handlers. In a "
        "configuration file, the dictionary itself may be given.",
    )

    # Operations ------------------------------------------------------------
    metrics_bind: str = setting(
        "",
        flags=["--metrics-bind"],
        section="Operations",
        parse=parse_optional_str,
        metavar="ADDRESS",
        default_doc="off",
        help="Serve Prometheus metrics (/metrics) and health checks (/healthz, /readyz) on this "
        "separate address ('HOST:PORT' or 'unix:PATH'), from the master, for all workers together.",
    )
    control_socket: str = setting(
        "auto",
        flags=["--control-socket"],
        section="Operations",
        parse=parse_control_socket,
        metavar="PATH",
        negative="--no-control-socket",
        default_doc="auto: $XDG_RUNTIME_DIR/greenserve/PID.sock, else /run/user/UID/greenserve/PID.sock, "
        "else greenserve-UID/PID.sock in the temporary directory",
        help="The master's control socket, for 'greenserve ctl' (status, workers, add, remove, reload, "
        "reopen, config): a Unix socket only the master's user can use (mode 0600, in a directory "
        "no other user can write to), removed at exit. 'off' (or --no-control-socket) turns it off.",
    )
    statsd_host: str = setting(
        "",
        flags=["--statsd-host"],
        section="Operations",
        parse=parse_statsd_host,
        metavar="ADDRESS",
        default_doc="off",
        help="Send gunicorn's statsd metrics (gunicorn.requests, gunicorn.request.duration, "
        "gunicorn.request.status.CODE, gunicorn.workers, gunicorn.log.LEVEL) to this statsd server "
        "over UDP: 'HOST:PORT' ('HOST' alone: port 8125, '[::1]:PORT' for IPv6) or 'unix:PATH' for a "
        "Unix datagram socket. See docs/operations.md#statsd.",
    )
    statsd_prefix: str = setting(
        "",
        flags=["--statsd-prefix"],
        section="Operations",
        parse=parse_statsd_prefix,
        metavar="PREFIX",
        help="Put this before every statsd metric name, joined with a '.' as gunicorn does "
        "('web' sends web.gunicorn.requests).",
    )
    dogstatsd_tags: str = setting(
        "",
        flags=["--dogstatsd-tags"],
        section="Operations",
        parse=parse_dogstatsd_tags,
        metavar="TAGS",
        help="Datadog (dogstatsd) tags added to every statsd metric, comma-separated: "
        "'env:prod,service:web' is sent as '|#env:prod,service:web'.",
    )
    block_threshold: float = setting(
        0.1,
        flags=["--block-threshold"],
        section="Operations",
        parse=_number(float, 0, 3600),
        metavar="SECONDS",
        help="Log a warning, with the stack and the request, when a worker's event loop is blocked "
        "longer than this (a CPU loop, a C call that does not yield); 0 turns the report off.",
    )

    request_id: bool = setting(
        False,
        flags=["--request-id"],
        section="Operations",
        parse=parse_bool,
        help="Give every request an id: a trusted proxy's --request-id-header when it is a valid "
        "one (trusted as for --forwarded-allow-ips; 1-200 visible ASCII characters, no quote or "
        "backslash), else 32 new random hex digits. Applications read it in "
        "environ['greenserve.request_id'] or scope['extensions']['greenserve.request_id']['id'], "
        "the access log in %(request_id)s and the JSON request_id key (see docs/operations.md).",
    )
    request_id_header: str = setting(
        "X-Request-ID",
        flags=["--request-id-header"],
        section="Operations",
        parse=parse_header_name,
        metavar="NAME",
        help="The header a trusted proxy's request id arrives in, and the response header that "
        "echoes it (with --request-id).",
    )
    request_id_response: bool = setting(
        True,
        flags=["--request-id-response"],
        section="Operations",
        parse=parse_bool,
        help="With --request-id, send the id back in the --request-id-header response header "
        "(unless the application sets that header itself), WebSocket handshakes and server-made "
        "error responses included.",
    )

    # Process -------------------------------------------------------------
    pidfile: str = setting(
        "",
        flags=["-p", "--pidfile", "--pid"],
        section="Process",
        parse=parse_optional_str,
        metavar="PATH",
        help="Write the master's process ID to this file (removed on exit).",
    )
    user: str = setting(
        "",
        flags=["-u", "--user"],
        section="Process",
        parse=parse_optional_str,
        metavar="USER",
        help="Run workers as this user (name or uid); the master keeps its user to bind "
        "privileged ports and reopen logs.",
    )
    group: str = setting(
        "",
        flags=["-g", "--group"],
        section="Process",
        parse=parse_optional_str,
        metavar="GROUP",
        help="Run workers as this group (name or gid).",
    )
    initgroups: bool = setting(
        False,
        flags=["--initgroups"],
        section="Process",
        parse=parse_bool,
        help="Give workers every supplementary group --user is a member of (from the group "
        "database), not only --group.",
    )
    worker_tmp_dir: str = setting(
        "",
        flags=["--worker-tmp-dir"],
        section="Process",
        parse=parse_optional_str,
        metavar="DIR",
        default_doc="/dev/shm when available, else the system temporary directory",
        help="Directory for the workers' heartbeat files. Use a memory file system: a "
        "disk-backed /tmp can stall heartbeats and get healthy workers killed.",
    )
    proc_name: str = setting(
        "",
        flags=["-n", "--proc-name", "--name"],
        section="Process",
        parse=parse_optional_str,
        metavar="NAME",
        default_doc="the application spec",
        help="Name shown in ps/top: 'greenserve: master [NAME]' and 'greenserve: worker [NAME] gen N' "
        "with the worker's state ('idle', 'busy 3/1000').",
    )

    # Hooks -----------------------------------------------------------------
    on_starting: Callable | None = setting(
        None,
        section="Hooks",
        parse=hook_taking("arbiter"),
        help="on_starting(arbiter): the master is starting.",
    )
    when_ready: Callable | None = setting(
        None, section="Hooks", parse=hook_taking("arbiter"), help="when_ready(arbiter): the workers are up."
    )
    pre_fork: Callable | None = setting(
        None,
        section="Hooks",
        parse=hook_taking("arbiter", "worker"),
        help="pre_fork(arbiter, worker): in the master, before a fork.",
    )
    post_fork: Callable | None = setting(
        None,
        section="Hooks",
        parse=hook_taking("arbiter", "worker"),
        help="post_fork(arbiter, worker): in the worker, after the fork.",
    )
    post_worker_init: Callable | None = setting(
        None,
        section="Hooks",
        parse=hook_taking("worker"),
        help="post_worker_init(worker): in the worker, after the application is loaded.",
    )
    worker_exit: Callable | None = setting(
        None,
        section="Hooks",
        parse=hook_taking("worker"),
        help="worker_exit(worker): in the worker, as it exits.",
    )
    on_exit: Callable | None = setting(
        None, section="Hooks", parse=hook_taking("arbiter"), help="on_exit(arbiter): the master is exiting."
    )
    pre_request: Callable | None = setting(
        None,
        section="Hooks",
        parse=hook_taking("worker", "environ"),
        help="pre_request(worker, environ): before the application is called.",
    )
    post_request: Callable | None = setting(
        None,
        section="Hooks",
        parse=hook_taking("worker", "environ", "status"),
        help="post_request(worker, environ, status): after the response was sent.",
    )

    # ---------------------------------------------------------------------

    def __post_init__(self) -> None:
        if self.keyfile and not self.certfile:
            raise ConfigError("keyfile is set but certfile is not")
        if self.cert_reqs != "none" and not self.ca_certs:
            raise ConfigError(f"cert_reqs={self.cert_reqs} needs ca_certs")
        if self.keyfile_password_file and self.keyfile_password_env:
            raise ConfigError("keyfile_password_file and keyfile_password_env: give the password one way")
        for name in ("keyfile_password_file", "keyfile_password_env", "ssl_context"):
            if getattr(self, name) and not self.certfile:
                raise ConfigError(f"{name} is set but certfile is not (TLS is on only with a certfile)")
        if not self.bind:
            raise ConfigError("bind: at least one address is needed")
        if self.root_path and (not self.root_path.startswith("/") or self.root_path.endswith("/")):
            raise ConfigError("root_path must start with '/' and not end with one, e.g. /api")
        if self.initgroups and not self.user:
            raise ConfigError("initgroups needs user: the groups are those of --user")

    def replace(self, **changes: Any) -> Config:
        """A copy with some settings changed (validated like any other source)."""
        return from_mapping({**self.as_dict(), **changes}, "replace()")

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @property
    def tls(self) -> bool:
        return bool(self.certfile)


SETTINGS: dict[str, Setting] = {f.name: f.metadata["setting"] for f in dataclasses.fields(Config)}


def suggest(name: str) -> str:
    """A ``did you mean`` hint for an unknown setting name (gunicorn's names get their own)."""
    gunicorn = migration.explain_name(name)
    if gunicorn:
        return f" ({gunicorn})"
    close = difflib.get_close_matches(name.replace("-", "_").lower(), SETTINGS, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def from_mapping(values: Mapping[str, Any], source: str) -> Config:
    """Validate ``{setting: raw value}`` from one or more sources into a Config."""
    parsed: dict[str, Any] = {}
    for name, raw in values.items():
        meta = SETTINGS.get(name)
        if meta is None:
            raise ConfigError(f"{source}: unknown setting {name!r}{suggest(name)}")
        try:
            parsed[name] = meta.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{source}: {name}: {exc}") from None
    try:
        return Config(**parsed)
    except TypeError as exc:  # pragma: no cover - guarded by the SETTINGS check above
        raise ConfigError(f"{source}: {exc}") from None


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    """Raw ``GREENSERVE_*`` values; an unknown one is an error, not ignored."""
    values: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name in ("config",):
            continue
        if name not in SETTINGS:
            raise ConfigError(f"environment: unknown variable {key}{suggest(name)}")
        if name in HOOKS:
            raise ConfigError(f"environment: {key}: hooks can only be set in a configuration file")
        values[name] = raw
    return values


def describe_default(name: str) -> str:
    meta = SETTINGS[name]
    if meta.default_doc is not None:
        return meta.default_doc
    value = getattr(Config(), name)
    if isinstance(value, tuple):
        return ",".join(value) if value else "(none)"
    if isinstance(value, bool):
        return "on" if value else "off"
    if value == "":
        return "(empty)"
    return str(value)


def _comment(text: str) -> str:
    """``text`` made safe for the end of a Python line (no line breaks or control characters)."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def format_config(config: Config, sources: Mapping[str, str] | None = None) -> str:
    """The resolved settings as a valid ``greenserve.conf.py``.

    With ``sources`` (``{setting: where it came from}``, see
    :func:`greenserve.config_sources.setting_sources`), each line ends with a
    comment naming its source.
    """
    lines: list[tuple[str, str]] = []
    for name in SETTINGS:
        value = getattr(config, name)
        if name in HOOKS:
            if value is not None:
                lines.append((f"# {name} = {getattr(value, '__qualname__', value)!s} (a function)", name))
            continue
        if name == "umask" and value is not None:
            lines.append((f"{name} = 0o{value:03o}", name))
        elif isinstance(value, tuple):
            lines.append((f"{name} = {list(value)!r}", name))
        else:
            lines.append((f"{name} = {value!r}", name))
    if sources is None:
        return "\n".join(text for text, _ in lines) + "\n"
    width = min(max(len(text) for text, _ in lines), 40)
    return (
        "\n".join(f"{text:<{width}}  # {_comment(sources.get(name, 'default'))}" for text, name in lines)
        + "\n"
    )


def settings_markdown() -> str:
    """``docs/settings.md``: generated, and checked by a test to stay current."""
    out = [
        "# Settings reference",
        "",
        "<!-- Generated from greenserve/config.py by `python -m greenserve.config`; do not edit. -->",
        "",
        "Every setting can be given, from highest to lowest precedence, as a command-line flag,",
        f"as an environment variable `{ENV_PREFIX}<NAME>`, in a configuration file",
        "(`greenserve.conf.py` in the working directory, or `--config PATH`; names as below),",
        "or in `[tool.greenserve]` of `pyproject.toml`. Lists are given comma-separated",
        "on the command line and in the environment.",
        "",
    ]
    for section in SECTIONS:
        out += [f"## {section}", ""]
        for name, meta in SETTINGS.items():
            if meta.section != section:
                continue
            out.append(f"### `{name}`")
            out.append("")
            if name in HOOKS:
                out.append("- Configuration file only (a function)")
                out.append("")
                out.append(meta.help)
                out.append("")
                continue
            flags = list(meta.flags) or [meta.metavar or name.upper()]
            shown = ", ".join(
                f"`{flag} {meta.metavar}`" if meta.metavar and flag.startswith("-") else f"`{flag}`"
                for flag in flags
            )
            if meta.negative:
                shown += f", `{meta.negative}`"
            out.append(f"- Command line: {shown}")
            out.append(f"- Environment: `{env_name(name)}`")
            out.append(f"- Default: `{describe_default(name)}`")
            out.append("")
            out.append(meta.help)
            out.append("")
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.stdout.write(settings_markdown())
