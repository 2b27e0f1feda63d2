"""``greenserve ctl``: ask a running master what it is doing, or tell it what to do.

It talks to the master's control socket (greenserve/master/control.py): one
JSON request line, one JSON reply line. Which master: ``--socket PATH``,
``--pid PID`` or ``--pidfile PATH``, or else the only one running as this
user (its socket is the only live one in the default directories). The
replies are printed as aligned text, or as JSON with ``--json``.

Every error is one line on standard error and exit code 2: no master, a
stale socket, permission denied, a command the master refused.

Standard library only, like the rest of the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from greenserve.errors import EXIT_CONFIG, EXIT_OK
from greenserve.master.control import COMMANDS, MAX_COUNT, pid_of, runtime_directories, socket_name

#: A reply may be this large (a few hundred bytes per worker).
MAX_REPLY = 16 * 1024 * 1024
#: How often --wait asks the master whether its workers are all up.
_POLL = 0.2

DESCRIPTION = "Talk to a running greenserve master through its control socket (see docs/ctl.md)."
EPILOG = (
    "Without --socket, --pid or --pidfile: the only master running as this user. "
    "Errors are one line, with exit code 2. "
    "Examples: greenserve ctl workers; greenserve ctl --pid 4242 add 2; greenserve ctl reload --wait"
)


class CtlError(Exception):
    """One line for the user; exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, like the server's own command line."""
        self.exit(EXIT_CONFIG, f"{self.prog}: error: {message}\n")


class _Formatter(argparse.HelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=100)


def _add_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    """The options every command takes: before the command, or after it (``suppress``: no defaults)."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    where = parser.add_argument_group("which master")
    where.add_argument("--socket", "-s", metavar="PATH", default=default(None), help="its control socket")
    where.add_argument("--pid", metavar="PID", type=int, default=default(None), help="its process ID")
    where.add_argument(
        "--pidfile", metavar="PATH", default=default(None), help="the file holding its process ID"
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print the master's reply as JSON, for scripts",
    )
    output.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=default(5.0),
        help="how long to wait for the master's reply [default: 5]",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="greenserve ctl",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=_Formatter,
        allow_abbrev=False,
    )
    _add_options(parser, suppress=False)
    commands = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", parser_class=_Parser
    )
    for name, text in COMMANDS.items():
        sub = commands.add_parser(name, help=text, description=text, formatter_class=_Formatter)
        _add_options(sub, suppress=True)
        if name in ("add", "remove"):
            sub.add_argument(
                "count", metavar="N", type=int, nargs="?", default=1, help="how many [default: 1]"
            )
        if name in ("add", "remove", "reload"):
            sub.add_argument(
                "--wait",
                action="store_true",
                help="then wait until every running worker is ready and of the current generation, "
                "and none is stopping (exit 2 if that does not happen within --wait-timeout)",
            )
            sub.add_argument(
                "--wait-timeout",
                metavar="SECONDS",
                type=float,
                default=60.0,
                help="how long --wait waits [default: 60]",
            )
    return parser


# -- finding the master ------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def read_pidfile(path: str) -> int:
    try:
        with open(path) as handle:
            text = handle.read(64).strip()
    except OSError as exc:
        raise CtlError(f"--pidfile {path}: {exc.strerror}") from None
    if not text.isdigit():
        raise CtlError(f"--pidfile {path}: no process ID in it")
    return int(text)


def directories(pid: int | None = None) -> list[str]:
    """Where default sockets may be: this user's directories, and those of ``pid``'s owner."""
    found = runtime_directories()
    owner = _owner(pid) if pid is not None else None
    if owner is not None and owner != os.geteuid():
        found += runtime_directories(owner)
    return list(dict.fromkeys(found))


def find_socket(socket_path: str | None, pid: int | None, pidfile: str | None, timeout: float) -> str:
    """The control socket to talk to, from the options, or the only live one; CtlError otherwise."""
    given = [
        flag for flag, value in (("--socket", socket_path), ("--pid", pid), ("--pidfile", pidfile)) if value
    ]
    if len(given) > 1:
        raise CtlError(f"give one of {', '.join(given)}, not several")
    if socket_path:
        return socket_path
    if pidfile:
        pid = read_pidfile(pidfile)
    if pid is not None:
        places = directories(pid)
        for directory in places:
            path = os.path.join(directory, socket_name(pid))
            if os.path.lexists(path):
                return path
        if not _alive(pid):
            raise CtlError(f"no server: there is no process {pid}")
        raise CtlError(
            f"no control socket for pid {pid} in {', '.join(places)}: is it a greenserve master, "
            "started with the default --control-socket? (otherwise give --socket PATH)"
        )
    live: list[tuple[int, str]] = []
    stale: list[str] = []
    places = directories()
    for directory in places:
        try:
            names = sorted(os.listdir(directory))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise CtlError(f"cannot read {directory}: {exc.strerror}") from None
        for name in names:
            master = pid_of(name)
            if master is not None:
                path = os.path.join(directory, name)
                if _alive(master):
                    live.append((master, path))
                else:
                    stale.append(path)
        if live:
            break  # the first directory with a live master decides (the session's own comes first)
    if len(live) == 1:
        return live[0][1]
    if len(live) > 1:
        shown = ", ".join(_describe(master, path, timeout) for master, path in live)
        raise CtlError(f"several greenserve masters are running: {shown}; choose one with --pid PID")
    if stale:
        raise CtlError(
            f"no server: stale control socket(s) {', '.join(stale)} (their master was killed; remove them)"
        )
    raise CtlError(
        f"no server: no greenserve master of this user has a control socket in {', '.join(places)} "
        "(give --socket PATH, --pid PID or --pidfile PATH)"
    )


def _describe(pid: int, path: str, timeout: float) -> str:
    """``4242 (myapp.wsgi:application)`` for the several-masters error."""
    try:
        app = ask(path, {"command": "status"}, min(timeout, 1.0)).get("app", "?")
    except CtlError:
        return str(pid)
    return f"{pid} ({_safe(str(app))})"


# -- one exchange --------------------------------------------------------------------------------


def ask(path: str, request: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Send one request to the master at ``path``; its result, or CtlError with its error."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(path)
        except FileNotFoundError:
            raise CtlError(f"no server: {path} does not exist") from None
        except PermissionError:
            raise CtlError(
                f"permission denied: {path} (only the user the master runs as, or root, may use it)"
            ) from None
        except ConnectionRefusedError:
            raise CtlError(
                f"stale socket {path}: no master is listening on it (was it killed?); remove the file"
            ) from None
        except TimeoutError:
            raise CtlError(f"no answer from {path} within {timeout:g} s") from None
        except OSError as exc:
            raise CtlError(f"cannot connect to {path}: {exc.strerror or exc}") from None
        data = b""
        try:
            sock.sendall(json.dumps(request).encode("utf-8") + b"\n")
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                if len(data) > MAX_REPLY:
                    raise CtlError(f"the reply from {path} is larger than {MAX_REPLY} bytes")
        except TimeoutError:
            raise CtlError(f"no answer from {path} within {timeout:g} s (--timeout)") from None
        except OSError as exc:
            raise CtlError(f"lost the connection to {path}: {exc.strerror or exc}") from None
    finally:
        sock.close()
    if not data:
        raise CtlError(f"the master at {path} closed the connection without answering (is it exiting?)")
    try:
        reply = json.loads(data)
    except ValueError:
        raise CtlError(f"{path} did not answer with JSON: is it a greenserve control socket?") from None
    if not isinstance(reply, dict):
        raise CtlError(f"{path} did not answer with a JSON object")
    if not reply.get("ok"):
        raise CtlError(_safe(str(reply.get("error", "the master refused the command"))))
    result = reply.get("result")
    return result if isinstance(result, dict) else {}


def wait_settled(path: str, timeout: float, wait_timeout: float, generation: int = 0) -> dict[str, Any]:
    """Poll ``status`` until every running worker is ready, current and wanted; the last status."""
    deadline = time.monotonic() + wait_timeout
    while True:
        status = ask(path, {"command": "status"}, timeout)
        workers = status["workers"]
        if status["generation"] < generation:
            raise CtlError(
                "the new workers could not start: the previous ones keep serving with the previous "
                "configuration (the master's error log says why)"
            )
        counts = {workers["wanted"], workers["running"], workers["ready"], workers["current"]}
        if len(counts) == 1 and status["generation"] >= generation:
            return status
        if time.monotonic() >= deadline:
            raise CtlError(
                f"still not settled after {wait_timeout:g} s: {workers['wanted']} wanted, "
                f"{workers['running']} running, {workers['ready']} ready, {workers['current']} current"
            )
        time.sleep(_POLL)


# -- text output ----------------------------------------------------------------------------------


def _safe(text: str) -> str:
    """No control characters reach the terminal: a setting or a name could hold escape sequences."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def duration(seconds: float | None) -> str:
    """``42s``, ``12m05s``, ``3h02m``, ``2d04h``."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def size(count: int | None) -> str:
    """Bytes in binary units: ``41.2 MiB``."""
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover - the loop always returns


def table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool]) -> str:
    """Columns aligned: numbers to the right, text to the left."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = []
    for row in (header, *rows):
        cells = [
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(row, widths, numeric, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _number(value: Any) -> str:
    return "-" if value is None else str(value)


def format_status(status: dict[str, Any]) -> str:
    workers = status["workers"]
    counts = f"{workers['running']} running ({workers['ready']} ready"
    counts += "".join(f", {workers[s]} {s}" for s in ("booting", "stopping") if workers.get(s))
    rows = [
        ("master", f"{status['pid']} (greenserve {status['version']})"),
        ("application", status["app"]),
        ("uptime", duration(status["uptime"])),
        ("workers", f"{workers['wanted']} wanted, {counts})"),
        ("generation", str(status["generation"])),
        ("listening", ", ".join(status["listeners"]) or "-"),
    ]
    if status.get("metrics"):
        rows.append(("metrics", status["metrics"]))
    rows.append(("control", status["control_socket"]))
    if status.get("restarts"):
        rows.append(
            ("restarts", ", ".join(f"{cause} {n}" for cause, n in sorted(status["restarts"].items())))
        )
    if status.get("new_master"):
        rows.append(("new master", str(status["new_master"])))
    if status.get("stopping"):
        rows.append(("state", "shutting down"))
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"{key:<{width}}  {_safe(str(value))}" for key, value in rows)


def format_workers(result: dict[str, Any]) -> str:
    header = ("PID", "AGE", "GEN", "STATE", "UPTIME", "REQUESTS", "CONNS", "BUSY", "HEARTBEAT", "RSS")
    numeric = (True, True, True, False, True, True, True, True, True, True)
    rows = [
        (
            str(w["pid"]),
            str(w["age"]),
            str(w["generation"]),
            _safe(str(w["state"])),
            duration(w["uptime"]),
            _number(w["requests"]),
            _number(w["connections"]),
            _number(w["busy"]),
            f"{w['heartbeat_age']:.1f}s ago",
            size(w["rss"]),
        )
        for w in result["workers"]
    ]
    total = len(rows)
    return table(header, rows, numeric) + f"\n\n{total} worker{'' if total == 1 else 's'}"


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_value(item) for item in value) if value else "(none)"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    if value == "":
        return "(empty)"
    return str(value)


def format_config(result: dict[str, Any]) -> str:
    rows = [
        (name, _safe(_value(item["value"])), _safe(str(item["source"])))
        for name, item in result["settings"].items()
    ]
    text = table(("SETTING", "VALUE", "SOURCE"), rows, (False, False, False))
    if "workers_now" in result:
        text += f"\n\nworkers: {result['workers_now']} now (changed by add/remove or SIGTTIN/SIGTTOU)"
    return text


def format_action(command: str, result: dict[str, Any]) -> str:
    if command in ("add", "remove"):
        before, wanted = result["before"], result["wanted"]
        if before == wanted:
            return f"workers: {wanted} wanted (unchanged: never fewer than 1)"
        return f"workers: {before} -> {wanted} wanted"
    if command == "reload":
        return (
            f"reloading: generation {result['generation']}; new workers start, "
            "the previous ones stop once the new ones are ready"
        )
    return "log files reopened in the master; each worker reopens its own"


def format_settled(status: dict[str, Any]) -> str:
    count = status["workers"]["ready"]
    return f"{count} worker{'' if count == 1 else 's'} of generation {status['generation']} ready"


# -- the command ---------------------------------------------------------------------------------


def run(argv: Sequence[str]) -> int:
    """``greenserve ctl ARGV``; returns the exit code."""
    args = build_parser().parse_args(argv)
    command = args.command
    if command is None:
        return _fail(f"give a command: {', '.join(COMMANDS)} (greenserve ctl --help says what each does)")
    if command in ("add", "remove") and not 1 <= args.count <= MAX_COUNT:
        return _fail(f"{command}: N must be from 1 to {MAX_COUNT}, got {args.count}")
    if args.timeout <= 0:
        return _fail(f"--timeout must be positive, got {args.timeout:g}")
    try:
        path = find_socket(args.socket, args.pid, args.pidfile, args.timeout)
        request: dict[str, Any] = {"command": command}
        if command in ("add", "remove"):
            request["count"] = args.count
        result = ask(path, request, args.timeout)
        settled = None
        if getattr(args, "wait", False):
            settled = wait_settled(path, args.timeout, args.wait_timeout, result.get("generation", 0))
    except CtlError as exc:
        return _fail(str(exc))
    if args.json:
        if settled is not None:
            result = {**result, "settled": settled}
        print(json.dumps(result, indent=2))
        return EXIT_OK
    formatter = {"status": format_status, "workers": format_workers, "config": format_config}.get(command)
    print(formatter(result) if formatter else format_action(command, result))
    if settled is not None:
        print(format_settled(settled))
    return EXIT_OK


def _fail(message: str) -> int:
    print(f"greenserve ctl: error: {message}", file=sys.stderr)
    return EXIT_CONFIG
