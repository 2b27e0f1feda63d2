"""User-space instructions per request, counted with valgrind's callgrind.

A benchmark helper, not a test: it prints numbers and ratios, it does not assert.

Why: wall-clock throughput on this shared 2-core VM varies by 20-50% between identical runs of
bench/run.py, too much to see a change of a few percent. Callgrind counts the instructions the
server executes; the counts are repeatable within about 0.5% and so compare two versions of the
code (or two servers) directly. They exclude kernel time (syscalls, the TCP stack) and say nothing
about cache misses or latency, so they complement bench/run.py, they do not replace it.

Method, for each (server, app):

* baseline run: start the server under ``valgrind --tool=callgrind`` (pinned with
  ``taskset -c 0``), wait until it is ready, stop it with SIGINT: the instructions of start-up
  and shutdown;
* loaded run: the same, with ``taskset -c 1 wrk -t1 -cCONNECTIONS -dSECONDS`` in between;
* instructions per request = (Ir loaded - Ir baseline) / requests counted by wrk.

uvicorn (httptools + uvloop) only serves ASGI apps (bench.asgi_apps:*); it is skipped for the
WSGI apps (bench.apps:*). Requires ``valgrind`` and ``wrk`` on PATH; a run takes a few minutes
(the server runs some 50 times slower under valgrind, and needs up to a minute to start).

Usage: python bench/instructions.py [--servers greenserve,uvicorn] [--app bench.asgi_apps:hello]
                                    [--connections 50] [--seconds 20] [--keep-output DIR]
                                    [--server-args '--metrics-bind 127.0.0.1:0']

e.g.   python bench/instructions.py --servers greenserve,uvicorn --app bench.asgi_apps:hello

Example output (2-core VM, 50 connections, 20 s of wrk under valgrind, greenserve of 2026-11-22):

  server      app                      baseline Ir      loaded Ir  requests  k Ir/request
  ----------  ---------------------  -------------  -------------  --------  ------------
  greenserve  bench.apps:hello       1,355,419,973  2,642,994,392    15,207          84.7
  greenserve  bench.asgi_apps:hello  1,443,107,725  2,601,680,521     7,726         150.0
  uvicorn     bench.asgi_apps:hello    529,698,176  1,237,339,759     6,718         105.3

(Earlier measurements by hand gave 168k, 298k and 209k: twice these, because they added up both
the summary: and the totals: line of each callgrind file, which hold the same count.)

Part of each run's cost is fixed (opening the connections, the first requests' warm-up) and is
spread over the requests: compare runs made with the same --connections and --seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import PROCS, free_port  # the harness's own process handling

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 90.0  # valgrind is slow to start a Python interpreter
EXIT_TIMEOUT = 90.0
SERVER_CPU = "0"
CLIENT_CPU = "1"


# --------------------------------------------------------------------------
# Servers


def python_binary() -> str:
    """The real interpreter binary: valgrind does not follow a pyenv shim's exec (empty output).

    In a virtualenv the symlink itself is kept: resolving it would lose the venv's site-packages.
    """
    if sys.prefix != sys.base_prefix:
        return sys.executable
    return os.path.realpath(sys.executable)


def cmd_greenserve(app: str, port: int) -> list[str]:
    return [
        "-m",
        "greenserve",
        "--single-process",
        "-b",
        f"127.0.0.1:{port}",
        "--no-access-log",
        "--worker-connections",
        "2000",
        "--backlog",
        "2048",
        app,
    ]


def cmd_uvicorn(app: str, port: int) -> list[str]:
    return [
        "-m",
        "uvicorn",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--http",
        "httptools",
        "--loop",
        "uvloop",
        "--log-level",
        "info",
        app,
    ]


@dataclasses.dataclass(frozen=True)
class ServerSpec:
    command: Callable[[str, int], list[str]]
    ready: tuple[str, ...]  # any of these in the server's stderr: it is serving
    modules: tuple[str, ...]  # must be importable
    asgi_only: bool = False


SERVERS = {
    "greenserve": ServerSpec(cmd_greenserve, ("serving",), ("greenserve",)),
    "uvicorn": ServerSpec(
        cmd_uvicorn,
        ("Uvicorn running", "Application startup complete"),
        ("uvicorn", "httptools", "uvloop"),
        asgi_only=True,
    ),
}


def is_asgi(app: str) -> bool:
    """By name, as in bench/: bench.asgi_apps:* are ASGI apps, bench.apps:* WSGI ones."""
    return "asgi" in app.split(":", 1)[0].rsplit(".", maxsplit=1)[-1]


# --------------------------------------------------------------------------
# Processes


class RunError(Exception):
    pass


def log(msg: str) -> None:
    print(msg, flush=True)


def tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


def wait_ready(proc: subprocess.Popen, stderr_log: Path, markers: tuple[str, ...], port: int) -> None:
    """Until the server logs one of ``markers`` and then accepts a connection on ``port``.

    The connection is needed too: uvicorn logs "Application startup complete" before it binds.
    The probe (connect, close) happens in the baseline run as well, so it cancels out.
    """
    deadline = time.monotonic() + READY_TIMEOUT
    logged = False
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RunError(f"server exited ({proc.returncode}) before it was ready:\n{tail(stderr_log)}")
        if not logged:
            text = stderr_log.read_text(errors="replace")
            # Valgrind's own lines start with ==PID==; only the server's count.
            lines = [line for line in text.splitlines() if not line.startswith("==")]
            logged = any(m in line for line in lines for m in markers)
        if logged:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=5):
                return
        time.sleep(0.2)
    raise RunError(f"server not ready after {READY_TIMEOUT:g} s:\n{tail(stderr_log)}")


def run_wrk(port: int, connections: int, seconds: float) -> int:
    argv = [
        "taskset",
        "-c",
        CLIENT_CPU,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        # Not wrk's 2 s: a timed-out request is work done by the server but not counted.
        "--timeout=30s",
        f"http://127.0.0.1:{port}/",
    ]
    proc = PROCS.start(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired as exc:
        raise RunError("wrk hung") from exc
    finally:
        PROCS.stop(proc, grace=0)
    m = re.search(r"(\d+) requests in", out)
    if proc.returncode != 0 or not m:
        raise RunError(f"wrk exit {proc.returncode}: {out.strip()[-300:]}")
    for pattern in (r"Socket errors:[^\n]*", r"Non-2xx or 3xx responses:[^\n]*"):
        if found := re.search(pattern, out):
            log(f"    note: wrk reports {found.group(0).strip()}")
    return int(m.group(1))


def callgrind_total(path: Path) -> int:
    """Ir of one callgrind output file: its summary: line(s), else its totals: line(s)."""
    summary, totals = 0, 0
    found_summary = False
    with path.open(errors="replace") as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                value = int(line.split()[1])
                if line.startswith("summary:"):
                    summary += value
                    found_summary = True
                else:
                    totals += value
    return summary if found_summary else totals


def run_server(
    server: str,
    app: str,
    outdir: Path,
    connections: int,
    seconds: float | None,
    extra: tuple[str, ...] = (),
) -> tuple[int, int]:
    """One run under callgrind; with ``seconds`` None no request is made. Returns (Ir, requests).

    ``extra``: more server options, put before the application (e.g. ``--metrics-bind``).
    """
    spec = SERVERS[server]
    outdir.mkdir(parents=True, exist_ok=True)
    for stale in outdir.glob("callgrind.out.*"):
        stale.unlink()
    port = free_port()
    argv = [
        "taskset",
        "-c",
        SERVER_CPU,
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={outdir}/callgrind.out.%p",
        python_binary(),
        *spec.command(app, port)[:-1],
        *extra,
        app,
    ]
    # A fixed hash seed: string hashes (dict probing) are then the same from run to run.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONHASHSEED": "0"}
    stderr_log = outdir / "server.log"
    requests = 0
    with stderr_log.open("w") as err:
        proc = PROCS.start(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    try:
        wait_ready(proc, stderr_log, spec.ready, port)
        if seconds is not None:
            requests = run_wrk(port, connections, seconds)
        if proc.poll() is not None:
            raise RunError(f"server died ({proc.returncode}):\n{tail(stderr_log)}")
        os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            raise RunError(f"server still running {EXIT_TIMEOUT:g} s after SIGINT") from exc
    finally:
        PROCS.stop(proc, grace=0)
    outputs = sorted(outdir.glob("callgrind.out.*"))
    total = sum(callgrind_total(p) for p in outputs)
    if not total:
        raise RunError(f"no callgrind output in {outdir}:\n{tail(stderr_log)}")
    return total, requests


# --------------------------------------------------------------------------
# Report


@dataclasses.dataclass
class Result:
    server: str
    app: str
    baseline: int
    loaded: int
    requests: int

    @property
    def per_request(self) -> float | None:
        return (self.loaded - self.baseline) / self.requests if self.requests else None


def text_table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [head, ["-" * w for w in widths], *rows]
    return "\n".join(
        "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in lines
    )


def report(results: list[Result]) -> str:
    head = ["server", "app", "baseline Ir", "loaded Ir", "requests", "k Ir/request"]
    rows = [
        [
            r.server,
            r.app,
            f"{r.baseline:,}",
            f"{r.loaded:,}",
            f"{r.requests:,}",
            f"{r.per_request / 1000:.1f}" if r.per_request is not None else "-",
        ]
        for r in results
    ]
    out = text_table(head, rows)
    ref = results[0]
    if len(results) > 1 and ref.per_request:
        out += f"\n\nrelative to {ref.server} {ref.app} (instructions per request):"
        for r in results[1:]:
            ratio = f"{r.per_request / ref.per_request:.2f}x" if r.per_request else "-"
            out += f"\n  {r.server} {r.app}: {ratio}"
    return out


# --------------------------------------------------------------------------
# Main


def split_list(values: list[str]) -> list[str]:
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--servers",
        default="greenserve",
        help=f"comma-separated, from {', '.join(SERVERS)} (default greenserve)",
    )
    p.add_argument(
        "--app",
        action="append",
        default=[],
        help="module:app, repeatable or comma-separated (default bench.apps:hello)",
    )
    p.add_argument("--connections", type=int, default=50, help="wrk connections (default 50)")
    p.add_argument(
        "--server-args",
        default="",
        metavar="ARGS",
        help="extra options for every server, one string (e.g. '--metrics-bind 127.0.0.1:0')",
    )
    p.add_argument("--seconds", type=float, default=20, help="seconds of wrk per loaded run (default 20)")
    p.add_argument(
        "--keep-output",
        metavar="DIR",
        help="keep callgrind's output and the server logs in DIR (default: a temporary directory, removed)",
    )
    args = p.parse_args(argv)

    servers = split_list([args.servers])
    extra = tuple(shlex.split(args.server_args))
    apps = split_list(args.app) or ["bench.apps:hello"]
    if unknown := [s for s in servers if s not in SERVERS]:
        p.error(f"unknown server(s): {', '.join(unknown)}; choose from {', '.join(SERVERS)}")
    for tool, package in (("valgrind", "valgrind"), ("wrk", "wrk"), ("taskset", "util-linux")):
        if not shutil.which(tool):
            sys.exit(f"error: {tool} not found on PATH (apt-get install {package})")
    sys.path.insert(0, str(ROOT))  # the servers run from ROOT: greenserve need not be installed
    for server in servers:
        if missing := [m for m in SERVERS[server].modules if importlib.util.find_spec(m) is None]:
            sys.exit(f"error: {server} needs {', '.join(missing)} (pip install {' '.join(missing)})")

    if args.keep_output:
        base = Path(args.keep_output).resolve()
        base.mkdir(parents=True, exist_ok=True)
    else:
        base = Path(tempfile.mkdtemp(prefix="greenserve-callgrind-"))

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    log(f"python: {python_binary()}; {args.connections} connections, {args.seconds:g} s of wrk per run")
    results: list[Result] = []
    failed = interrupted = False
    try:
        for app in apps:
            for server in servers:
                if SERVERS[server].asgi_only and not is_asgi(app):
                    log(f"note: skipping {server} for {app}: {server} serves ASGI apps only")
                    continue
                slug = f"{server}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', app)}"
                try:
                    log(f"{server} {app}: baseline run (start, stop)")
                    baseline, _ = run_server(
                        server, app, base / slug / "baseline", args.connections, None, extra
                    )
                    log(f"    {baseline:,} Ir")
                    log(f"{server} {app}: loaded run ({args.seconds:g} s of wrk)")
                    loaded, requests = run_server(
                        server, app, base / slug / "loaded", args.connections, args.seconds, extra
                    )
                    log(f"    {loaded:,} Ir, {requests:,} requests")
                except RunError as exc:
                    log(f"    FAILED: {exc}")
                    failed = True
                    continue
                results.append(Result(server, app, baseline, loaded, requests))
    except KeyboardInterrupt:
        interrupted = True
        log("\ninterrupted: stopping servers, reporting what was measured")
    finally:
        PROCS.stop_all()
        if not args.keep_output:
            shutil.rmtree(base, ignore_errors=True)
    if results:
        log("\n" + report(results))
    if args.keep_output:
        log(f"\ncallgrind output and server logs kept in {base}")
    return 130 if interrupted else 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
