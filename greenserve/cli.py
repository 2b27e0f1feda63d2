"""The ``greenserve`` command: argv -> one Config -> single process or master.

The parser is generated from :mod:`greenserve.config`, so every setting has
exactly the flags, help and validation declared there. Importing this module
must stay cheap and must not import gevent, asyncio or the application (the
master runs from here).
"""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import sys
from collections.abc import Collection, Iterable, Sequence
from typing import Any, NoReturn

from greenserve import __version__, compat, migration
from greenserve.config import SETTINGS, Config, describe_default, env_name, format_config
from greenserve.errors import EXIT_APP_LOAD_ERROR, EXIT_CONFIG, EXIT_OK, ConfigError, GreenserveError

DESCRIPTION = (
    "A fast, strict WSGI server on gevent greenlets: one greenlet per connection, "
    "so blocking calls in the application do not block other requests."
)
EPILOG = (
    "Settings can also come from GREENSERVE_<NAME> environment variables, "
    "greenserve.conf.py or [tool.greenserve] in pyproject.toml (see docs/settings.md). "
    "Example: greenserve --workers 4 -b 0.0.0.0:8000 myproject.wsgi:application. "
    "To control a running server: greenserve ctl --help."
)


class _Formatter(argparse.HelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=36, width=100)


class _Switch(argparse.Action):
    """A boolean setting: ``--reload`` sets it, ``--no-reload`` clears it; both shown in --help."""

    def __init__(self, option_strings: Sequence[str], dest: str, negative: str, **kwargs: Any) -> None:
        super().__init__([*option_strings, negative], dest, nargs=0, **kwargs)
        self.negative = negative

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option_string: str | None = None
    ) -> None:
        setattr(namespace, self.dest, option_string != self.negative)


class _Refuse(argparse.Action):
    """A gunicorn flag greenserve does not have: one line saying what to do instead, exit 2."""

    def __init__(self, option_strings: Sequence[str], dest: str, item: migration.Unsupported) -> None:
        super().__init__(
            option_strings,
            dest,
            nargs="?" if item.takes_value else 0,
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
        )
        self.item = item

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option_string: str | None = None
    ) -> None:
        flag = option_string or self.option_strings[-1]
        message = self.item.message(flag)
        parser.error(message if flag in message else f"{flag}: {message}")


def suggest_option(argument: str, known: Iterable[str]) -> str | None:
    """The option a mistyped ``argument`` most likely meant, or None.

    ``--keepalive`` -> ``--keep-alive``, ``--limit_request_line`` ->
    ``--limit-request-line``, ``--Workers`` -> ``--workers``, ``--keep`` ->
    ``--keep-alive`` (greenserve does not accept abbreviations, but says which).
    """
    options = list(known)
    name = argument.partition("=")[0]
    normal = name.lower().replace("_", "-")
    if not normal.startswith("--"):  # short options: only a change of case is a likely slip
        return normal if normal in options and normal != name else None
    if normal in options:
        return normal
    longs = [option for option in options if option.startswith("--")]
    prefixed = [option for option in longs if option.startswith(normal)]
    if len(prefixed) == 1:
        return prefixed[0]
    close = difflib.get_close_matches(normal, longs, n=1, cutoff=0.75)
    return close[0] if close else None


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors, and "did you mean" for unknown options (as uvicorn does)."""

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(self._unrecognized(extras))
        return parsed

    def _unrecognized(self, extras: list[str]) -> str:
        options = [item for item in extras if item.startswith("-") and item != "-"]
        if not options:
            return f"unexpected argument {extras[0]!r}: give one application, e.g. myproject.wsgi:application"
        known = [
            option
            for action in self._actions
            if not isinstance(action, _Refuse) and action.help is not argparse.SUPPRESS
            for option in action.option_strings
        ]
        hint = suggest_option(options[0], known)
        message = f"unrecognized option {options[0].partition('=')[0]!r}"
        return f"{message} (did you mean {hint}?)" if hint else message

    def error(self, message: str) -> NoReturn:
        """One line, no usage block: the usage is 100 lines away in --help."""
        self.exit(EXIT_CONFIG, f"{self.prog}: error: {message}\n")


def add_setting_arguments(parser: argparse.ArgumentParser, skip: Collection[str] = ()) -> None:
    """One option per setting, grouped by section; unset options stay absent.

    Shared by ``greenserve`` and ``manage.py greenserve``. Values are kept as
    given: :mod:`greenserve.config_sources` validates them with every other source.
    """
    groups: dict[str, Any] = {}
    for name, meta in SETTINGS.items():
        if name in skip or (not meta.flags and not meta.positional):
            continue  # hooks: configuration file only
        if meta.section not in groups:
            groups[meta.section] = parser.add_argument_group(meta.section)
        group = groups[meta.section]
        help_text = f"{meta.help} [default: {describe_default(name)}; env {env_name(name)}]"
        help_text = help_text.replace("%", "%%")
        if meta.positional:
            group.add_argument(
                name, nargs="?", metavar=meta.metavar, help=help_text, default=argparse.SUPPRESS
            )
            continue
        if meta.parse.__name__ == "parse_bool":
            assert meta.negative is not None  # config.setting() derives one for every boolean
            group.add_argument(
                *meta.flags,
                dest=name,
                action=_Switch,
                negative=meta.negative,
                help=help_text,
                default=argparse.SUPPRESS,
            )
            continue
        choices = getattr(meta.parse, "choices", None)
        group.add_argument(
            *meta.flags,
            dest=name,
            metavar=meta.metavar,
            action="append" if meta.append else "store",
            choices=choices if choices and not meta.metavar else None,
            help=help_text,
            default=argparse.SUPPRESS,
        )
        if meta.negative:
            group.add_argument(
                meta.negative,
                dest=name,
                action="store_const",
                const="",
                help=argparse.SUPPRESS,
                default=argparse.SUPPRESS,
            )


def to_argv(values: dict[str, Any]) -> list[str]:
    """Settings as ``greenserve`` command-line arguments (the inverse of the parser)."""
    argv: list[str] = []
    app = None
    for name, value in values.items():
        meta = SETTINGS[name]
        if meta.positional:
            app = value
        elif meta.parse.__name__ == "parse_bool":
            if value:
                argv.append(meta.long_flag)
            elif meta.negative:
                argv.append(meta.negative)
        elif meta.append or isinstance(value, (list, tuple)):
            items = [value] if isinstance(value, str) else list(value)
            if meta.append:
                for item in items:
                    argv += [meta.long_flag, str(item)]
            else:
                argv += [meta.long_flag, ",".join(map(str, items))]
        elif value == "" and meta.negative:
            argv.append(meta.negative)
        else:
            argv += [meta.long_flag, str(value)]
    if app:
        argv.append(app)
    return argv


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="greenserve",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=_Formatter,
        allow_abbrev=False,  # --keep must not quietly mean --keep-alive
    )
    add_setting_arguments(parser)

    cli = parser.add_argument_group("Command")
    cli.add_argument(
        "-c",
        "--config",
        metavar="PATH",
        default=None,
        help="Python configuration file [default: ./greenserve.conf.py when present]",
    )
    cli.add_argument(
        "--print-config",
        action="store_true",
        default=False,
        help="Print the resolved settings as a configuration file and exit.",
    )
    cli.add_argument(
        "--check-config",
        action="store_true",
        default=False,
        help="Validate the settings and the logging configuration, check the hooks' signatures "
        "(without running them), import the application, and exit (0 when it loads).",
    )
    cli.add_argument(
        "--paste",
        "--paster",
        metavar="INI[#NAME]",
        default=None,
        help="Serve the application of a PasteDeploy ini file, as gunicorn does: the same as "
        "APP \"paste.deploy:loadapp('config:/abs/path.ini#NAME')\" (needs PasteDeploy).",
    )
    cli.add_argument(
        "--paste-global",
        metavar="KEY=VALUE",
        action="append",
        default=None,
        help="A global_conf variable for the --paste ini file (repeatable).",
    )
    cli.add_argument("-v", "--version", action="version", version=f"greenserve {__version__}")
    for item in migration.UNSUPPORTED:
        if item.flags:
            parser.add_argument(*item.flags, dest=f"_unsupported_{item.name}", action=_Refuse, item=item)
    return parser


def paste_spec(path: str, global_conf: Sequence[str] = ()) -> str:
    """The application spec that loads a PasteDeploy ini file, as ``gunicorn --paste`` does."""
    file, _, name = path.partition("#")
    uri = "config:" + os.path.abspath(file) + (f"#{name}" if name else "")
    conf = {}
    for item in global_conf:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--paste-global: expected KEY=VALUE, got {item!r}")
        conf[key] = value
    arguments = repr(uri) + (f", global_conf={conf!r}" if conf else "")
    return f"paste.deploy:loadapp({arguments})"


def _paste_app(args: argparse.Namespace, values: dict[str, Any]) -> str:
    if "app" in values:
        raise ConfigError("give either APP or --paste, not both")
    file = args.paste.partition("#")[0]
    if not os.path.isfile(file):
        raise ConfigError(f"--paste {file}: no such file")
    return paste_spec(args.paste, args.paste_global or ())


def apply_environment(config: Config) -> None:
    """``--env KEY=VALUE``: set in this process (the master), so every worker inherits it."""
    for item in config.raw_env:
        key, _, value = item.partition("=")
        os.environ[key] = value


def _describe_files(files: list[str]) -> str:
    from greenserve.preflight import shown

    return ", ".join(
        f"{shown(path)} [tool.greenserve]" if path.endswith("pyproject.toml") else shown(path)
        for path in files
    )


def _report_startup(config: Config, files: list[str], sources: dict[str, str]) -> None:
    """One line each: the configuration files read, and what greenserve makes of gunicorn's habits."""
    from greenserve.config_sources import DEFAULT

    log = logging.getLogger("greenserve.error")
    if files:
        log.info("Read settings from %s", _describe_files(files))
    if sources.get("worker_class", DEFAULT) != DEFAULT:
        level, message = migration.worker_class_notice(config.worker_class)
        log.log(level, "%s", message)
    if os.environ.get("GUNICORN_CMD_ARGS"):
        log.warning(
            "GUNICORN_CMD_ARGS is set and ignored: give greenserve its flags, or GREENSERVE_* "
            "variables (docs/configuration.md)"
        )
    if os.path.isfile("gunicorn.conf.py") and not any(path.endswith(".py") for path in files):
        log.warning(
            "./gunicorn.conf.py is not read: greenserve reads greenserve.conf.py, where some "
            "names differ (%s#configuration-file-names)",
            migration.DOC,
        )


def _check_app(config: Config) -> int:
    """--check-config: the settings, the logging configuration and the application.

    Hooks are checked (their signatures were, when the settings were read)
    but not run: they expect a live master and its workers, and what they do
    (open connections, register the instance somewhere, write files) would
    happen for real in a process that only checks.
    """
    from greenserve.config import HOOKS
    from greenserve.worker import boot

    boot.patch()
    try:
        boot.load_application(config)
    except GreenserveError as exc:
        print(f"greenserve: error: {exc}", file=sys.stderr)
        return EXIT_APP_LOAD_ERROR
    print(f"greenserve: configuration OK, {config.app} loads")
    defined = [name for name in HOOKS if getattr(config, name) is not None]
    if defined:
        print(
            f"greenserve: hooks not run, only their signatures checked: {', '.join(defined)} "
            "(they run in a live master and its workers)"
        )
    return EXIT_OK


def _fail(exc: GreenserveError) -> int:
    print(f"greenserve: error: {exc}", file=sys.stderr)
    return exc.exit_code


def run(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and serve; returns the process exit code.

    ``greenserve ctl ...`` (``ctl`` first) talks to a running master instead
    (:mod:`greenserve.ctl`). An application module named ``ctl`` is served
    as ``greenserve ctl:app``, or with any option before it.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["ctl"]:
        from greenserve import ctl

        return ctl.run(arguments[1:])

    from greenserve import logs, preflight
    from greenserve.config_sources import resolve_with_sources
    from greenserve.sockets import validate_binds

    parser = build_parser()
    args = parser.parse_args(arguments)
    values = {name: value for name, value in vars(args).items() if name in SETTINGS}
    try:
        if args.paste:
            values["app"] = _paste_app(args, values)
        elif args.paste_global:
            raise ConfigError("--paste-global needs --paste")
        config, files, sources = resolve_with_sources(values, config_path=args.config)
        validate_binds(config.bind)
    except GreenserveError as exc:
        return _fail(exc)

    if args.print_config:
        sys.stdout.write(format_config(config, sources))
        return EXIT_OK
    if not config.app:
        return _fail(
            ConfigError(
                "the application is required, e.g. 'greenserve myproject.wsgi:application' "
                "(greenserve --help lists every option)"
            )
        )
    try:
        preflight.check(config)
    except GreenserveError as exc:
        return _fail(exc)
    apply_environment(config)
    try:
        logs.setup(config)
    except GreenserveError as exc:  # a --log-config file or a log file that cannot be used
        return _fail(exc)
    except OSError as exc:  # the checks above passed, but opening failed all the same
        return _fail(ConfigError(f"cannot open a log file: {exc}"))
    _report_startup(config, files, sources)
    if args.check_config:
        return _check_app(config)

    if not config.single_process and not compat.CAN_FORK:
        print("greenserve: no fork() on this platform: serving from a single process", file=sys.stderr)
        config = config.replace(single_process=True, workers=1)
    if config.single_process:
        from greenserve import single

        return single.run(config)

    from greenserve.master import arbiter

    def reload_config() -> tuple[Config, dict[str, str]]:
        """SIGHUP: the files again, checked like at startup (a ConfigError keeps the old config)."""
        new_config, new_files, new_sources = resolve_with_sources(values, config_path=args.config)
        validate_binds(new_config.bind)
        try:
            preflight.check(new_config)
        except GreenserveError as exc:
            raise ConfigError(str(exc)) from None
        apply_environment(new_config)
        if new_files:
            logging.getLogger("greenserve.error").info("Read settings from %s", _describe_files(new_files))
        return new_config, new_sources

    return arbiter.run(config, reload_config, sources)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console-script entry point."""
    try:
        code = run(argv)
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
