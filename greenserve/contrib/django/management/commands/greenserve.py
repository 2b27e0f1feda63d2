"""``python manage.py greenserve [addrport] [greenserve options]``.

Translates the Django settings and the options into ``greenserve``
arguments, runs the system checks and reports unapplied migrations as
``runserver`` does, then replaces this process with ``python -m greenserve``.
The master must start from a clean interpreter: by the time a management
command runs, Django has imported asyncio, ssl and concurrent.futures, which
gevent must patch before anything uses them, and a master must not hold the
application anyway. Whatever the checks import here is discarded by the
exec.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from greenserve.cli import add_setting_arguments, to_argv
from greenserve.config import SETTINGS
from greenserve.config_sources import file_and_environment_settings

_ADDRPORT = re.compile(r"^(?:(?P<host>\[[0-9a-fA-F:.]+\]|[^:\[\]]+):)?(?P<port>\d+)$")


def parse_addrport(addrport: str) -> str:
    """runserver's syntax: ``8000``, ``0.0.0.0:8000``, ``[::1]:8000``, ``localhost:8000``."""
    match = _ADDRPORT.match(addrport.strip())
    if match is None:
        raise CommandError(f'"{addrport}" is not a valid port number or address:port pair.')
    host = match.group("host") or "127.0.0.1"
    return f"{host}:{match.group('port')}"


class Command(BaseCommand):
    help = (
        "Serve the project with greenserve: a pre-fork gevent server, one greenlet per "
        "connection. Accepts every greenserve option (see `greenserve --help`)."
    )
    # As runserver: no checks before handle(), which runs them itself (unless
    # --skip-checks) and then looks for unapplied migrations.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("addrport", nargs="?", help="Port or address:port, as for runserver.")
        parser.add_argument(
            "--asgi",
            action="store_true",
            help="Serve settings.ASGI_APPLICATION (default: Django's ASGI handler).",
        )
        parser.add_argument(
            "--noreload",
            action="store_false",
            dest="use_reloader",
            help="Do not restart on code changes (the default when DEBUG is on).",
        )
        parser.add_argument(
            "--nostatic",
            action="store_false",
            dest="use_static_handler",
            help="Do not serve static files (served by default when DEBUG is on).",
        )
        parser.add_argument("--config", metavar="PATH", default=None, help="greenserve configuration file.")
        parser.add_argument("--skip-checks", action="store_true", help="Skip system checks.")
        # Every greenserve setting, minus what Django's own options cover.
        add_setting_arguments(parser, skip=("app", "pythonpath"))

    def greenserve_argv(self, options: dict[str, Any]) -> list[str]:
        values = {name: options[name] for name in SETTINGS if options.get(name) is not None}
        values.pop("pythonpath", None)  # Django's own --pythonpath, handled below
        # What greenserve.conf.py, pyproject.toml or GREENSERVE_* already say
        # wins over this command's runserver-like defaults (not over its options).
        configured, _ = file_and_environment_settings(config_path=options.get("config"))
        if options.get("addrport"):
            if "bind" in values:
                raise CommandError("give either addrport or --bind, not both")
            values["bind"] = [parse_addrport(options["addrport"])]
        if options.get("pythonpath"):
            values["pythonpath"] = [options["pythonpath"]]
        defaults = {
            "reload": settings.DEBUG and options.get("use_reloader", True),
            "proc_name": getattr(settings, "WSGI_APPLICATION", None) or "django",
        }
        for name, value in defaults.items():
            if name not in values and name not in configured and value:
                values[name] = value
        static = bool(options.get("use_static_handler", True))
        entry = "asgi" if options.get("asgi") else "wsgi"
        values["app"] = f"greenserve.contrib.django.entry:{entry}(static={static})"
        argv = to_argv(values)
        if options.get("config"):
            argv[:0] = ["--config", options["config"]]
        return argv

    def check_project(self, options: dict[str, Any]) -> None:
        """What runserver does before it serves: system checks, then a word on unapplied migrations.

        A check error stops the command (SystemCheckError, exit status 1);
        warnings and the migrations notice are printed and the server starts.
        The checks run once, here: with --reload the workers restart on code
        changes without running them again.
        """
        if not options.get("skip_checks"):
            self.stdout.write("Performing system checks...\n\n")
            self.check(display_num_errors=True)
        self.check_migrations()
        # Close what the migrations check opened, as runserver does, rather than leave it to the exec.
        for connection in connections.all(initialized_only=True):
            connection.close()

    def handle(self, *args: Any, **options: Any) -> None:
        argv = [sys.executable, "-m", "greenserve", *self.greenserve_argv(options)]
        env = dict(os.environ)
        settings_module = options.get("settings") or os.environ.get("DJANGO_SETTINGS_MODULE")
        if not settings_module:
            raise CommandError("DJANGO_SETTINGS_MODULE is not set")
        env["DJANGO_SETTINGS_MODULE"] = settings_module
        self.check_project(options)
        if options.get("verbosity", 1) >= 2:
            self.stdout.write("exec " + " ".join(argv))
        self.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, argv, env)  # noqa: S606 - the same interpreter, a clean process
