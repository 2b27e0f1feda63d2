"""The ``greenserve`` command: argv -> one Config -> single process or master.

The parser is generated from :mod:`greenserve.config`, so every setting has
exactly the flags, help and validation declared there. Importing this module
must stay cheap and must not import gevent, asyncio or the application (the
master runs from here).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Collection, Sequence
from typing import Any, NoReturn

from greenserve import __version__, compat
from greenserve.config import SETTINGS, Config, describe_default, env_name, format_config
from greenserve.errors import EXIT_APP_LOAD_ERROR, EXIT_OK, GreenserveError

DESCRIPTION = (
    "A fast, strict WSGI server on gevent greenlets: one greenlet per connection, "
    "so blocking calls in the application do not block other requests."
)
EPILOG = (
    "Settings can also come from GREENSERVE_<NAME> environment variables, "
    "greenserve.conf.py or [tool.greenserve] in pyproject.toml (see docs/settings.md). "
    "Example: greenserve --workers 4 -b 0.0.0.0:8000 myproject.wsgi:application"
)


class _Formatter(argparse.HelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=36, width=100)


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
            group.add_argument(
                *meta.flags,
                dest=name,
                action="store_const",
                const=True,
                help=help_text,
                default=argparse.SUPPRESS,
            )
            if meta.negative:
                group.add_argument(
                    meta.negative,
                    dest=name,
                    action="store_const",
                    const=False,
                    help=argparse.SUPPRESS,
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
                argv.append(meta.flags[-1])
            elif meta.negative:
                argv.append(meta.negative)
        elif meta.append or isinstance(value, (list, tuple)):
            items = [value] if isinstance(value, str) else list(value)
            if meta.append:
                for item in items:
                    argv += [meta.flags[-1], str(item)]
            else:
                argv += [meta.flags[-1], ",".join(map(str, items))]
        elif value == "" and meta.negative:
            argv.append(meta.negative)
        else:
            argv += [meta.flags[-1], str(value)]
    if app:
        argv.append(app)
    return argv


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    cli.add_argument("-v", "--version", action="version", version=f"greenserve {__version__}")
    return parser


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


def run(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and serve; returns the process exit code."""
    from greenserve import logs
    from greenserve.config_sources import resolve
    from greenserve.sockets import validate_binds

    parser = build_parser()
    args = parser.parse_args(argv)
    values = {name: value for name, value in vars(args).items() if name in SETTINGS}
    try:
        config, _files = resolve(values, config_path=args.config)
        validate_binds(config.bind)
    except GreenserveError as exc:
        print(f"greenserve: error: {exc}", file=sys.stderr)
        return exc.exit_code

    if args.print_config:
        sys.stdout.write(format_config(config))
        return EXIT_OK
    if not config.app:
        parser.error("the application is required, e.g. 'greenserve myproject.wsgi:application'")
    try:
        logs.setup(config)
    except GreenserveError as exc:
        print(f"greenserve: error: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.check_config:
        return _check_app(config)

    if not config.single_process and not compat.CAN_FORK:
        print("greenserve: no fork() on this platform: serving from a single process", file=sys.stderr)
        config = config.replace(single_process=True, workers=1)
    if config.single_process:
        from greenserve import single

        return single.run(config)

    from greenserve.master import arbiter

    def reload_config() -> Config:
        new_config, _ = resolve(values, config_path=args.config)
        validate_binds(new_config.bind)
        return new_config

    return arbiter.run(config, reload_config)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console-script entry point."""
    try:
        code = run(argv)
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
