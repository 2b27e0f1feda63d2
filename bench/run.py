"""Side-by-side benchmark of greenserve and its peers on loopback.

A benchmark, not a test: it prints numbers and ratios, it does not assert.
See bench/README.md for how to run it and docs/benchmarks.md for results.

Discipline (made for a 2-core machine):

* every server is pinned to one core (``taskset -c 0``), ``wrk -t1`` and the
  idle-connection client to the other (``taskset -c 1``), the harness too;
* each server gets a warm-up run before anything is measured;
* several rounds, the server order rotated each round (A B C D, B C D A, ...),
  and the **median** of the rounds is reported, with min-max and p99 latency;
* every server is checked for a correct response (two requests on one
  keep-alive connection) before it is measured; a server that fails to start,
  answers wrongly or dies is reported and the run goes on;
* every process runs in its own process group and is killed at the end, also
  on Ctrl-C or an exception.

Scenarios:

  hello   13-byte hello world, Content-Length set, 50 keep-alive connections
  sleep   an app that sleeps 50 ms (time.sleep, patched by gevent), 1000 connections;
          ideal = 1000 / 0.05 s = 20,000 req/s
  h11     greenserve --http h11 against gunicorn -k gevent on hello (measured inside
          the hello rounds; ``--only h11`` runs just those two)
  memory  5,000 idle keep-alive connections (one request each); worker RSS before/after
  asgi-hello  the same hello as a raw ASGI 3 app (bench.asgi_apps:hello), 50 connections:
          greenserve (--loop auto, and --loop uvloop) against uvicorn (httptools + uvloop)
  asgi-sleep  an ASGI app that awaits asyncio.sleep(0.05), 1000 connections; ideal 20,000 req/s
  (``--only asgi`` runs both ASGI scenarios, ``--only wsgi`` the others)

  --baseline REV  also measures greenserve at git revision REV ("greenserve@REV", run from a
          temporary worktree) next to this checkout's, in the same rounds: the wall-clock
          comparison of a change, with the peers as the yardstick

Usage: python bench/run.py [--rounds N] [--duration S] [--only hello,sleep,greenserve,...]
                           [--baseline REV] [--markdown PATH] [--json PATH] [--plot SVG]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import http.client
import io
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
EXPECTED_BODY = b"Hello, world!"
SLEEP_SECONDS = 0.05

# --------------------------------------------------------------------------
# Servers


def _tool(name: str) -> list[str]:
    """A console script from this interpreter's environment (fallback: PATH)."""
    candidate = Path(sys.executable).with_name(name)
    if candidate.exists():
        return [str(candidate)]
    found = shutil.which(name)
    if found:
        return [found]
    raise FileNotFoundError(name)


def cmd_greenserve(app: str, port: int, opts: dict) -> list[str]:
    # -w 1 is greenserve's default too, unless WEB_CONCURRENCY is set: explicit, like gunicorn's.
    cmd = [*_tool("greenserve"), "--no-access-log", "-w", "1", "-b", f"127.0.0.1:{port}"]
    if opts.get("http"):
        cmd += ["--http", opts["http"]]
    if opts.get("loop"):
        cmd += ["--loop", opts["loop"]]
    if opts.get("keep_alive"):
        cmd += ["--keep-alive", str(opts["keep_alive"])]
    if opts.get("worker_connections"):
        cmd += ["--worker-connections", str(opts["worker_connections"])]
    return [*cmd, *opts.get("extra", ()), app]


def cmd_greenserve_h11(app: str, port: int, opts: dict) -> list[str]:
    return cmd_greenserve(app, port, {**opts, "http": "h11"})


def cmd_greenserve_uvloop(app: str, port: int, opts: dict) -> list[str]:
    return cmd_greenserve(app, port, {**opts, "loop": "uvloop"})


def cmd_uvicorn(app: str, port: int, opts: dict) -> list[str]:
    # One process: with --workers 1 uvicorn serves from the process it starts in.
    cmd = [
        *_tool("uvicorn"),
        "--http",
        "httptools",
        "--loop",
        "uvloop",
        "--workers",
        "1",
        "--no-access-log",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    return [*cmd, *opts.get("extra", ()), app]


def cmd_gunicorn(app: str, port: int, opts: dict) -> list[str]:
    cmd = [*_tool("gunicorn"), "-k", "gevent", "-w", "1", "-b", f"127.0.0.1:{port}"]
    if opts.get("keep_alive"):
        cmd += ["--keep-alive", str(opts["keep_alive"])]
    if opts.get("worker_connections"):
        cmd += ["--worker-connections", str(opts["worker_connections"])]
    return [*cmd, *opts.get("extra", ()), app]


def cmd_pywsgi(app: str, port: int, opts: dict) -> list[str]:
    return [sys.executable, str(BENCH / "pywsgi_server.py"), app, str(port)]


def cmd_waitress(app: str, port: int, opts: dict) -> list[str]:
    return [
        *_tool("waitress-serve"),
        f"--listen=127.0.0.1:{port}",
        "--threads=4",
        *opts.get("extra", ()),
        app,
    ]


def cmd_floor(app: str, port: int, opts: dict) -> list[str]:
    # Fixed response, no WSGI: only meaningful for the hello scenario.
    return [sys.executable, str(BENCH / "bare_gevent_httptools.py"), str(port)]


@dataclasses.dataclass(frozen=True)
class ServerSpec:
    name: str
    label: str
    build: Any
    #: Imported before this checkout (``--baseline``'s worktree); None: this checkout.
    source: Path | None = None


SERVERS = {
    s.name: s
    for s in (
        ServerSpec("greenserve", "greenserve (httptools)", cmd_greenserve),
        ServerSpec("greenserve-h11", "greenserve --http h11", cmd_greenserve_h11),
        ServerSpec("gunicorn-gevent", "gunicorn -k gevent -w 1", cmd_gunicorn),
        ServerSpec("pywsgi", "gevent.pywsgi.WSGIServer", cmd_pywsgi),
        ServerSpec("waitress", "waitress-serve --threads=4", cmd_waitress),
        ServerSpec("floor", "floor: bare gevent+httptools", cmd_floor),
        ServerSpec("greenserve-uvloop", "greenserve --loop uvloop", cmd_greenserve_uvloop),
        ServerSpec("uvicorn", "uvicorn (httptools + uvloop, 1 worker)", cmd_uvicorn),
    )
}
#: Servers that take --server-args.
TAKES_ARGS = ("greenserve", "greenserve-h11", "greenserve-uvloop", "gunicorn-gevent", "waitress", "uvicorn")


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    app: str
    connections: int
    servers: tuple[str, ...]
    opts: dict = dataclasses.field(default_factory=dict)
    #: Before measuring, check the server answers this many concurrent connections
    #: within this many seconds (None: no check).
    hold_check: float | None = None
    #: Seconds the app waits per request: the ideal rate is connections / sleep.
    sleep: float | None = None
    #: Labels that differ from the server's usual one in this scenario.
    labels: dict = dataclasses.field(default_factory=dict)

    @property
    def ideal(self) -> float | None:
        return self.connections / self.sleep if self.sleep else None

    def label(self, server: str) -> str:
        return self.labels.get(server, SERVERS[server].label)


ASGI_LABELS = {"greenserve": "greenserve --loop auto (asyncio)"}
ASGI_SERVERS = ("greenserve", "greenserve-uvloop", "uvicorn")


SCENARIOS = {
    "hello": Scenario(
        "hello",
        "hello world, 13-byte body, 50 keep-alive connections",
        "bench.apps:hello",
        50,
        ("greenserve", "greenserve-h11", "gunicorn-gevent", "pywsgi", "waitress", "floor"),
    ),
    "sleep": Scenario(
        "sleep",
        "50 ms time.sleep app, 1000 connections (ideal 20,000 req/s)",
        "bench.apps:sleep50",
        1000,
        ("greenserve", "gunicorn-gevent", "pywsgi", "waitress"),
        hold_check=5.0,
        sleep=SLEEP_SECONDS,
    ),
    "memory": Scenario(
        "memory",
        "5,000 idle keep-alive connections: worker RSS per connection",
        "bench.apps:hello",
        5000,
        ("greenserve", "greenserve-h11", "gunicorn-gevent"),
        {"keep_alive": 60, "worker_connections": 6000},
    ),
    "asgi-hello": Scenario(
        "asgi-hello",
        "ASGI hello world (raw ASGI 3 app), 13-byte body, 50 keep-alive connections",
        "bench.asgi_apps:hello",
        50,
        ASGI_SERVERS,
        labels=ASGI_LABELS,
    ),
    "asgi-sleep": Scenario(
        "asgi-sleep",
        "ASGI app awaiting asyncio.sleep(0.05), 1000 connections (ideal 20,000 req/s)",
        "bench.asgi_apps:sleep50",
        1000,
        ASGI_SERVERS,
        hold_check=5.0,
        sleep=SLEEP_SECONDS,
        labels=ASGI_LABELS,
    ),
}
ALIASES = {"h11": ("hello", ("greenserve-h11", "gunicorn-gevent"))}
#: Names for several scenarios at once.
GROUPS = {"asgi": ("asgi-hello", "asgi-sleep"), "wsgi": ("hello", "sleep", "memory")}


# --------------------------------------------------------------------------
# Processes


class Procs:
    """Every child process, each in its own session/process group; all killed at the end."""

    def __init__(self) -> None:
        self.live: list[subprocess.Popen] = []

    def start(self, argv: list[str], **kw) -> subprocess.Popen:
        proc = subprocess.Popen(argv, start_new_session=True, **kw)
        self.live.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, grace: float = 5.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left in the group (a worker whose master died, ...).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(2)
        if proc in self.live:
            self.live.remove(proc)

    def stop_all(self) -> None:
        for proc in list(self.live):
            self.stop(proc, grace=3.0)


PROCS = Procs()


def launch(argv: list[str], log: Path, source: Path | None = None) -> subprocess.Popen:
    """Start a server from the repository root, output to ``log``.

    ``source`` (another checkout) comes first on PYTHONPATH, then this one: its
    greenserve package is the one imported, even over an editable install.
    """
    path = [str(source) if source else "", str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}
    with log.open("wb") as out:
        out.write(f"$ {shlex.join(argv)}\n".encode())
        out.flush()
        return PROCS.start(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def check_http(port: int, timeout: float = 10.0) -> str | None:
    """Two GETs on one keep-alive connection; returns an error text or None."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        for i in range(2):
            conn.request("GET", "/", headers={"Host": "bench"})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200 or body != EXPECTED_BODY:
                return f"request {i + 1}: status {resp.status}, body {body[:60]!r}"
            if resp.getheader("Content-Length") != str(len(EXPECTED_BODY)):
                return f"request {i + 1}: Content-Length {resp.getheader('Content-Length')!r}"
            if resp.will_close:
                return f"request {i + 1}: server closed the keep-alive connection"
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    return None


def open_idle_client(port: int, count: int, args, batch: int = 500, timeout: float = 30.0):
    """Start bench/idle_client.py on the client core; returns (process, its 'ready' event)."""
    argv = [
        "taskset",
        "-c",
        str(args.client_cpu),
        sys.executable,
        str(BENCH / "idle_client.py"),
        "127.0.0.1",
        str(port),
        str(count),
        str(batch),
        str(timeout),
    ]
    client = PROCS.start(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ready = json.loads(client.stdout.readline() or "{}")
    if ready.get("event") != "ready":
        PROCS.stop(client, grace=1.0)
        raise RuntimeError(f"idle client did not report ready: {ready}")
    return client, ready


def client_command(client: subprocess.Popen, cmd: str) -> dict:
    client.stdin.write(cmd + "\n")
    client.stdin.flush()
    return json.loads(client.stdout.readline() or "{}")


def hold_check(port: int, count: int, seconds: float, args) -> str | None:
    """Can the server answer ``count`` concurrent connections within ``seconds``?"""
    try:
        client, ready = open_idle_client(port, count, args, batch=count, timeout=seconds)
    except (OSError, RuntimeError, ValueError) as exc:
        return f"capacity check failed: {exc}"
    try:
        client_command(client, "close")
    finally:
        PROCS.stop(client, grace=2.0)
    if ready["failed"] > count // 100:
        return f"answered only {ready['open']} of {count} concurrent connections within {seconds:g} s"
    return None


def tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


@dataclasses.dataclass
class Running:
    spec: ServerSpec
    port: int
    proc: subprocess.Popen
    log: Path
    error: str | None = None

    def alive(self) -> bool:
        return self.proc.poll() is None


def start_server(spec: ServerSpec, scenario: Scenario, args, logdir: Path) -> Running:
    port = free_port()
    opts = {**scenario.opts, "extra": args.server_args.get(spec.name, [])}
    argv = ["taskset", "-c", str(args.server_cpu), *spec.build(scenario.app, port, opts)]
    log = logdir / f"{scenario.name}-{spec.name}.log"
    proc = launch(argv, log, spec.source)
    run = Running(spec, port, proc, log)
    if not wait_port(port, proc):
        run.error = f"did not start (exit {proc.poll()}): {tail(log)}"
    else:
        problem = check_http(port)
        if problem:
            run.error = f"wrong response: {problem}"
    if run.error:
        PROCS.stop(proc)
    return run


# --------------------------------------------------------------------------
# /proc helpers


def children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(pid: int) -> list[int]:
    kids = children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def worker_pid(pid: int) -> int:
    """The process that serves: the server itself, or its (largest) leaf child (gunicorn's worker)."""
    kids = children_map()
    tree = process_tree(pid)
    leaves = [p for p in tree if p != pid and not kids.get(p)]
    if not leaves:
        return pid
    return max(leaves, key=lambda p: rss_kb(p) or 0)


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def socket_fds(pid: int) -> int:
    n = 0
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                    n += 1
    return n


def proc_cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total


def core_busy_ticks(cpu: int) -> int:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            v = [int(x) for x in line.split()[1:]]
            return sum(v) - v[3] - v[4]  # all but idle and iowait
    return 0


def wait_quiet(cpus: tuple[int, ...], threshold: float, max_wait: float) -> float:
    """Wait (up to ``max_wait`` s) until other processes use at most ``threshold`` % of each core.

    Samples 0.5 s windows while the servers are idle. Returns the seconds waited.
    """
    start = time.monotonic()
    hz = os.sysconf("SC_CLK_TCK")
    while True:
        t0, b0 = time.monotonic(), [core_busy_ticks(c) for c in cpus]
        time.sleep(0.5)
        elapsed = time.monotonic() - t0
        busy = [100 * (core_busy_ticks(c) - b) / hz / elapsed for c, b in zip(cpus, b0, strict=True)]
        waited = time.monotonic() - start
        if max(busy) <= threshold or waited >= max_wait:
            return waited


class ClientMeter:
    """The client core during a run: used by wrk (a reaped child) and the harness, and by others."""

    def __init__(self, cpu: int) -> None:
        self.cpu, self.t0, self.core0 = cpu, time.monotonic(), core_busy_ticks(cpu)
        self.own0 = self._own()

    @staticmethod
    def _own() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    def done(self) -> tuple[float, float]:
        elapsed = max(time.monotonic() - self.t0, 1e-6)
        core = (core_busy_ticks(self.cpu) - self.core0) / os.sysconf("SC_CLK_TCK") / elapsed
        own = (self._own() - self.own0) / elapsed
        return 100 * own, 100 * max(core - own, 0.0)


class CoreMeter:
    """CPU used on the server core during a run: by the server, and by anything else (noise)."""

    def __init__(self, cpu: int, pid: int) -> None:
        self.cpu, self.pids = cpu, process_tree(pid)
        self.t0 = time.monotonic()
        self.core0 = core_busy_ticks(cpu)
        self.server0 = proc_cpu_ticks(self.pids)

    def done(self) -> tuple[float, float]:
        hz = os.sysconf("SC_CLK_TCK")
        elapsed = max(time.monotonic() - self.t0, 1e-6)
        core = (core_busy_ticks(self.cpu) - self.core0) / hz / elapsed
        server = (proc_cpu_ticks(self.pids) - self.server0) / hz / elapsed
        return 100 * server, 100 * max(core - server, 0.0)


# --------------------------------------------------------------------------
# wrk

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_latency_ms(text: str) -> float | None:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def parse_wrk(out: str) -> dict:
    res: dict[str, Any] = {"rps": None, "requests": 0, "p50_ms": None, "p99_ms": None, "non2xx": 0}
    res["errors"] = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", out):
        res["rps"] = float(m.group(1))
    if m := re.search(r"(\d+) requests in", out):
        res["requests"] = int(m.group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        if m := re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M):
            res[key] = parse_latency_ms(m.group(1))
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        res["non2xx"] = int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        res["errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=True))
    return res


def run_wrk(port: int, connections: int, duration: float, args, timeout_s: float = 5.0) -> dict:
    argv = [
        "taskset",
        "-c",
        str(args.client_cpu),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--latency",
        f"--timeout={timeout_s:g}s",
        f"http://127.0.0.1:{port}/",
    ]
    proc = PROCS.start(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=duration + 60)
    except subprocess.TimeoutExpired:
        PROCS.stop(proc)
        return {"rps": None, "failed": "wrk hung", "raw": ""}
    finally:
        PROCS.stop(proc, grace=0.1)
    res = parse_wrk(out)
    res["raw"] = out
    if proc.returncode != 0 or res["rps"] is None:
        res["failed"] = f"wrk exit {proc.returncode}: {out.strip()[-200:]}"
    return res


# --------------------------------------------------------------------------
# Scenarios


def log(msg: str) -> None:
    print(msg, flush=True)


def turns(order: list[str], running: dict[str, Any], results: dict, args) -> Iterator[tuple[str, Any]]:
    """Each live server's turn, ``args.rounds`` rounds in rotated order (A B C, then B C A, ...).

    ``running`` maps a name to its started server (``.proc``, ``.log``); one that
    died is marked failed in ``results`` and skipped.
    """
    for rnd in range(args.rounds):
        shift = rnd % len(order) if order else 0
        this_round = order[shift:] + order[:shift]
        log(f"  round {rnd + 1}/{args.rounds}: {' '.join(this_round)}")
        for name in this_round:
            run = running[name]
            if run.proc.poll() is not None:
                if results[name]["status"] == "ok":
                    results[name].update(status="failed", note=f"server died: {tail(run.log)}")
                continue
            yield name, run


def measure_quietly(label: str, pid: int, measure: Callable[[], dict], args) -> dict:
    """One measured run of ``measure()`` on the server ``pid``, with the cores' use added to its result.

    Waits (up to --quiet-wait) for both cores to be quiet first, and redoes the
    run (up to --retries) while other processes took more than --max-noise of
    either core; the last attempt is kept whatever its noise.
    """
    for attempt in range(args.retries + 1):
        if args.quiet_wait > 0:
            waited = wait_quiet((args.server_cpu, args.client_cpu), args.max_noise, args.quiet_wait)
            if waited >= 1.0:
                log(f"    (waited {waited:.0f}s for the cores to be quiet)")
        meter = CoreMeter(args.server_cpu, pid)
        client_meter = ClientMeter(args.client_cpu)
        res = measure()
        res["server_cpu"], res["noise_cpu"] = meter.done()
        res["client_core_cpu"], res["client_noise_cpu"] = client_meter.done()
        res["attempts"] = attempt + 1
        if max(res["noise_cpu"], res["client_noise_cpu"]) <= args.max_noise or attempt == args.retries:
            break
        log(
            f"    {label} discarded: other processes used {res['noise_cpu']:.0f}% of the server core, "
            f"{res['client_noise_cpu']:.0f}% of the client core; again"
        )
        time.sleep(args.pause)
    return res


def measure_load(scenario: Scenario, servers: list[str], args, logdir: Path, results: dict) -> None:
    """Warm up, then rounds with rotated order; median per server (filled into ``results``)."""
    log(f"\n=== {scenario.name}: {scenario.title}")
    running: dict[str, Running] = {}
    try:
        for name in servers:
            run = start_server(SERVERS[name], scenario, args, logdir)
            if not run.error and scenario.hold_check:
                problem = hold_check(run.port, scenario.connections, scenario.hold_check, args)
                if problem:
                    run.error = problem
                    PROCS.stop(run.proc)
            if run.error:
                log(f"  {name:16s} NA: {run.error}")
                results[name] = {"status": "NA" if scenario.hold_check else "failed", "note": run.error}
                results[name]["runs"] = []
            else:
                running[name] = run
                results[name] = {"status": "ok", "note": "", "runs": [], "port": run.port}
            time.sleep(args.pause)
        order = list(running)
        for name in order:
            log(f"  warm-up {name} ({args.warmup:g}s)")
            warm = run_wrk(running[name].port, scenario.connections, args.warmup, args)
            if not running[name].alive():
                results[name].update(status="failed", note=f"died during warm-up: {tail(running[name].log)}")
            elif warm.get("failed"):
                results[name]["note"] = f"warm-up: {warm['failed']}"
            time.sleep(args.pause)
        order = [n for n in order if results[n]["status"] == "ok"]
        for name, run in turns(order, running, results, args):
            res = measure_quietly(
                f"{name:16s}",
                run.proc.pid,
                partial(run_wrk, run.port, scenario.connections, args.duration, args),
                args,
            )
            if not args.keep_raw:
                res.pop("raw", None)
            results[name]["runs"].append(res)
            errs = sum(res.get("errors", {}).values())
            log(
                f"    {name:16s} {fmt_num(res.get('rps')):>9s} req/s  p99 {fmt_ms(res.get('p99_ms')):>9s}"
                f"  non2xx {res.get('non2xx', 0)}  sockerr {errs}"
                f"  core{args.server_cpu}: server {res['server_cpu']:.0f}% other {res['noise_cpu']:.0f}%"
                f"  core{args.client_cpu}: wrk+harness {res['client_core_cpu']:.0f}%"
                f" other {res['client_noise_cpu']:.0f}%"
                + (f"  FAILED {res['failed']}" if res.get("failed") else "")
            )
            if not run.alive():
                results[name].update(status="failed", note=f"server died: {tail(run.log)}")
            time.sleep(args.pause)
    finally:
        for run in running.values():
            PROCS.stop(run.proc)
        for r in results.values():
            summarise(r, scenario, args.max_noise)


def summarise(r: dict, scenario: Scenario, max_noise: float) -> None:
    good = [x for x in r["runs"] if not x.get("failed") and x.get("rps")]
    r["rounds_ok"] = len(good)
    if good:
        rps = [x["rps"] for x in good]
        r["median_rps"] = statistics.median(rps)
        r["min_rps"], r["max_rps"] = min(rps), max(rps)
        p99 = [x["p99_ms"] for x in good if x.get("p99_ms") is not None]
        r["p99_ms"] = statistics.median(p99) if p99 else None
        r["server_cpu"] = statistics.median(x["server_cpu"] for x in good)
        r["noise_cpu_max"] = max(x["noise_cpu"] for x in good)
        r["client_core_cpu"] = statistics.median(x["client_core_cpu"] for x in good)
        r["client_noise_cpu_max"] = max(x.get("client_noise_cpu", 0.0) for x in good)
    r["non2xx"] = sum(x.get("non2xx", 0) for x in r["runs"])
    r["requests"] = sum(x.get("requests", 0) for x in r["runs"])
    errs: dict[str, int] = {}
    for x in r["runs"]:
        for k, v in x.get("errors", {}).items():
            errs[k] = errs.get(k, 0) + v
    r["socket_errors"] = errs
    if r["status"] == "ok" and not good:
        r["status"] = "failed"
        r["note"] = r["note"] or "no successful round"
    # A server that drops or times out a noticeable share of connections did not
    # really serve the scenario: report it as NA, with the numbers as a note.
    bad = errs.get("connect", 0) + errs.get("timeout", 0)
    if r["status"] == "ok" and r["requests"] and bad > max(10, 0.001 * r["requests"]):
        r["status"] = "degraded"
        r["note"] = (
            f"{errs.get('connect', 0)} connect errors, {errs.get('timeout', 0)} timeouts over "
            f"{r['requests']} requests: did not hold {scenario.connections} connections"
        )
    if r["status"] == "ok" and r["non2xx"]:
        r["status"] = "degraded"
        r["note"] = f"{r['non2xx']} non-2xx responses"
    dropped = errs.get("read", 0) + errs.get("write", 0)
    if r["status"] == "ok" and dropped:
        r["note"] = f"{dropped} read/write errors: the server closed connections under load"
    noisy = sum(1 for x in good if max(x["noise_cpu"], x.get("client_noise_cpu", 0.0)) > max_noise)
    if noisy:
        r["noisy_runs"] = noisy
        r["note"] = "; ".join(filter(None, [r["note"], f"{noisy} noisy run(s) kept after retries"]))


def measure_memory(scenario: Scenario, servers: list[str], args, logdir: Path, results: dict) -> None:
    log(f"\n=== {scenario.name}: {args.idle_connections} idle keep-alive connections")
    for name in servers:
        spec = SERVERS[name]
        run = start_server(spec, scenario, args, logdir)
        if run.error:
            log(f"  {name:16s} FAILED: {run.error}")
            results[name] = {"status": "failed", "note": run.error}
            continue
        client = None
        try:
            # Warm the code paths (and the allocator) before the baseline.
            run_wrk(run.port, 50, 2, args)
            time.sleep(1.5)
            wpid = worker_pid(run.proc.pid)
            before, socks_before = rss_kb(wpid), socket_fds(wpid)
            client, ready = open_idle_client(run.port, args.idle_connections, args)
            time.sleep(args.settle)
            early, socks_after = rss_kb(wpid), socket_fds(wpid)
            time.sleep(max(0.0, args.idle_hold - args.settle))
            after = rss_kb(wpid)  # steady state: every connection has been idle for a while
            peak = peak_rss_kb(wpid)
            check = client_command(client, "check")
            client_command(client, "close")
            time.sleep(args.settle)
            after_close = rss_kb(wpid)
            opened = ready["open"]
            r = {
                "status": "ok",
                "note": "",
                "worker_pid_is_child": wpid != run.proc.pid,
                "rss_before_kb": before,
                "rss_early_kb": early,
                "rss_after_kb": after,
                "rss_peak_kb": peak,
                "rss_after_close_kb": after_close,
                "opened": opened,
                "failed_to_open": ready["failed"],
                "open_seconds": ready["seconds"],
                "server_sockets_added": socks_after - socks_before,
                "still_open_after_hold": check.get("open"),
                "closed_by_server": check.get("closed_by_server"),
            }
            r["kb_per_conn"] = (after - before) / opened if opened and before and after else None
            r["kb_per_conn_early"] = (early - before) / opened if opened and before and early else None
            r["kb_per_conn_peak"] = (peak - before) / opened if opened and before and peak else None
            if ready["failed"] or check.get("closed_by_server"):
                r["status"] = "degraded"
                r["note"] = (
                    f"{ready['failed']} failed to open, {check.get('closed_by_server')} closed by the server"
                )
            if not run.alive():
                r.update(status="failed", note=f"server died: {tail(run.log)}")
            results[name] = r
            log(
                f"  {name:16s} RSS {before} -> {early} kB after {args.settle:g}s "
                f"({fmt_num(r['kb_per_conn_early'], 2)} KB/conn) -> {after} kB after {args.idle_hold:g}s "
                f"({fmt_num(r['kb_per_conn'], 2)} KB/conn), peak {peak} kB, "
                f"after close {after_close} kB; open {opened}, failed {ready['failed']}, "
                f"server sockets +{r['server_sockets_added']}, still open after "
                f"{args.idle_hold:g}s {check.get('open')}"
            )
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            results[name] = {"status": "failed", "note": f"{type(exc).__name__}: {exc}; {tail(run.log)}"}
            log(f"  {name:16s} FAILED: {results[name]['note']}")
        finally:
            if client is not None:
                PROCS.stop(client, grace=2.0)
            PROCS.stop(run.proc)
        time.sleep(args.pause)


# --------------------------------------------------------------------------
# Reporting


def fmt_num(x: float | None, digits: int = 0) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def fmt_ms(x: float | None) -> str:
    return "-" if x is None else (f"{x:.2f} ms" if x < 100 else f"{x:,.0f} ms")


def rps_of(results: dict, scen: str, server: str) -> float | None:
    r = results.get(scen, {}).get(server)
    return r.get("median_rps") if r and r.get("status") == "ok" else None


@dataclasses.dataclass(frozen=True)
class Target:
    """``server`` should reach ``factor`` x ``ref``'s req/s in ``scenario`` (``ref`` None: the ideal)."""

    scenario: str
    server: str
    ref: str | None
    factor: float
    #: A variant measured against the same bar for information (its verdict is in parentheses).
    informative: bool = False


TARGETS = (
    Target("hello", "greenserve", "gunicorn-gevent", 3.0),
    Target("hello", "greenserve-h11", "gunicorn-gevent", 1.2),
    Target("sleep", "greenserve", None, 0.85),
    Target("asgi-hello", "greenserve", "uvicorn", 0.6),
    Target("asgi-hello", "greenserve-uvloop", "uvicorn", 0.6, informative=True),
    Target("asgi-sleep", "greenserve", "uvicorn", 0.85),
    Target("asgi-sleep", "greenserve-uvloop", "uvicorn", 0.85, informative=True),
)
MEMORY_TARGET_KB = 10.0


def target_for(scen: str, server: str, ref: str | None) -> Target | None:
    for t in TARGETS:
        if (t.scenario, t.server, t.ref) == (scen, server, ref):
            return t
    return None


def ratio_rows(results: dict) -> list[tuple[str, str, str, str]]:
    """(what, value, target, verdict)."""
    rows = []

    def ratio(label: str, scen: str, a: str, b: str, scen_b: str = "") -> None:
        """a / b in one scenario (or a in ``scen`` / b in ``scen_b``), with its target from TARGETS."""
        x, y = rps_of(results, scen, a), rps_of(results, scen_b or scen, b)
        if x is None or y is None:
            return
        v = round(x / y, 2)
        t = None if scen_b else target_for(scen, a, b)
        text = ok = ""
        if t is not None:
            text, ok = f">= {t.factor:g}x", verdict(v >= t.factor)
            if t.informative:
                text, ok = f"({text})", f"({ok})"
        rows.append((label, f"{v:.2f}x", text, ok))

    def ideal_rows(scen: str, names: tuple[str, ...]) -> None:
        scenario = SCENARIOS[scen]
        for name in names:
            x = rps_of(results, scen, name)
            if x is None:
                continue
            pct = 100 * x / scenario.ideal
            t = target_for(scen, name, None)
            rows.append(
                (
                    f"{scen}: {name} % of ideal {scenario.ideal:,.0f} req/s",
                    f"{pct:.1f}%",
                    f">= {100 * t.factor:g}%" if t else "",
                    verdict(round(pct, 1) >= 100 * t.factor) if t else "",
                )
            )
        for name, r in results.get(scen, {}).items():
            if r.get("status") not in ("ok", None):
                rows.append((f"{scen}: {name}", "NA", "", r.get("note", "")))

    ratio("hello: greenserve / gunicorn -k gevent", "hello", "greenserve", "gunicorn-gevent")
    ratio("hello: greenserve / floor (bare gevent+httptools)", "hello", "greenserve", "floor")
    ratio("hello: greenserve / gevent.pywsgi", "hello", "greenserve", "pywsgi")
    ratio("hello: greenserve / waitress", "hello", "greenserve", "waitress")
    ratio("hello: gunicorn -k gevent / floor", "hello", "gunicorn-gevent", "floor")
    ratio("h11: greenserve --http h11 / gunicorn -k gevent", "hello", "greenserve-h11", "gunicorn-gevent")
    ratio("h11: greenserve --http h11 / greenserve httptools", "hello", "greenserve-h11", "greenserve")
    ideal_rows("sleep", ("greenserve", "gunicorn-gevent", "pywsgi"))
    ratio("sleep: greenserve / gunicorn -k gevent", "sleep", "greenserve", "gunicorn-gevent")
    ratio("asgi-hello: greenserve --loop auto / uvicorn", "asgi-hello", "greenserve", "uvicorn")
    ratio("asgi-hello: greenserve --loop uvloop / uvicorn", "asgi-hello", "greenserve-uvloop", "uvicorn")
    ratio(
        "asgi-hello: greenserve --loop uvloop / --loop auto", "asgi-hello", "greenserve-uvloop", "greenserve"
    )
    ratio(
        "asgi-hello: greenserve ASGI (--loop auto) / greenserve WSGI hello",
        "asgi-hello",
        "greenserve",
        "greenserve",
        scen_b="hello",
    )
    ratio("asgi-sleep: greenserve --loop auto / uvicorn", "asgi-sleep", "greenserve", "uvicorn")
    ratio("asgi-sleep: greenserve --loop uvloop / uvicorn", "asgi-sleep", "greenserve-uvloop", "uvicorn")
    ideal_rows("asgi-sleep", ("greenserve", "greenserve-uvloop", "uvicorn"))
    if BASELINE in SERVERS:
        base = SERVERS[BASELINE].label
        for scen, ref in (
            ("hello", "gunicorn-gevent"),
            ("sleep", "gunicorn-gevent"),
            ("asgi-hello", "uvicorn"),
            ("asgi-sleep", "uvicorn"),
        ):
            ratio(f"{scen}: greenserve / {base}", scen, "greenserve", BASELINE)
            ratio(f"{scen}: {base} / {SERVERS[ref].label}", scen, BASELINE, ref)
    mem = results.get("memory", {})
    for name in ("greenserve", "greenserve-h11", "gunicorn-gevent"):
        r = mem.get(name)
        if r and r.get("kb_per_conn") is not None:
            target = name == "greenserve"
            rows.append(
                (
                    f"memory: {name} KB RSS per idle connection",
                    f"{r['kb_per_conn']:.2f} KB",
                    f"<= {MEMORY_TARGET_KB:g} KB" if target else "",
                    verdict(round(r["kb_per_conn"], 2) <= MEMORY_TARGET_KB) if target else "",
                )
            )
    peak = mem.get("greenserve", {}).get("kb_per_conn_peak")
    if peak is not None:
        rows.append(("memory: greenserve KB RSS per connection at peak (VmHWM)", f"{peak:.2f} KB", "", ""))
    a, b = mem.get("greenserve", {}).get("kb_per_conn"), mem.get("gunicorn-gevent", {}).get("kb_per_conn")
    if a and b:
        rows.append(("memory: greenserve / gunicorn -k gevent (KB per connection)", f"{a / b:.2f}x", "", ""))
    return rows


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def load_table(scen: str, res: dict) -> tuple[list[str], list[list[str]]]:
    ideal = SCENARIOS[scen].ideal
    head = ["server", "median req/s", "min-max req/s", "p99 latency", "rounds", "non-2xx", "socket errors"]
    if ideal:
        head.insert(2, "% of ideal")
    head += ["server core: server / others (max)", "client core: wrk / others (max)", "status / note"]
    rows = []
    for name, r in res.items():
        errs = r.get("socket_errors", {})
        err_txt = ", ".join(f"{k} {v}" for k, v in errs.items() if v) or "0"
        row = [
            SCENARIOS[scen].label(name),
            fmt_num(r.get("median_rps")),
            f"{fmt_num(r.get('min_rps'))} - {fmt_num(r.get('max_rps'))}" if r.get("median_rps") else "-",
            fmt_ms(r.get("p99_ms")),
            f"{r.get('rounds_ok', 0)}/{len(r.get('runs', []))}",
            str(r.get("non2xx", 0)),
            err_txt,
            f"{r['server_cpu']:.0f}% / {r['noise_cpu_max']:.0f}%" if r.get("server_cpu") is not None else "-",
            f"{r['client_core_cpu']:.0f}% / {r['client_noise_cpu_max']:.0f}%"
            if r.get("client_core_cpu") is not None
            else "-",
            r["status"] if not r.get("note") else f"{r['status']}: {r['note']}",
        ]
        if ideal:
            row.insert(2, f"{100 * r['median_rps'] / ideal:.1f}%" if r.get("median_rps") else "-")
        if r["status"] != "ok":
            row[1] = f"NA ({row[1]})" if r.get("median_rps") else "NA"
        rows.append(row)
    return head, rows


def memory_table(res: dict, args) -> tuple[list[str], list[list[str]]]:
    head = [
        "server",
        "idle conns held",
        "RSS before",
        f"RSS after {args.idle_hold:g} s idle",
        "KB / connection (steady)",
        "peak RSS (VmHWM)",
        "KB / connection at peak",
        "RSS after close",
        "still open after hold",
        "status / note",
    ]
    rows = []
    for name, r in res.items():
        rows.append(
            [
                SERVERS[name].label + (" (worker)" if r.get("worker_pid_is_child") else ""),
                f"{r.get('opened', '-')} (failed {r.get('failed_to_open', '-')})",
                f"{fmt_num(r.get('rss_before_kb'))} kB",
                f"{fmt_num(r.get('rss_after_kb'))} kB",
                fmt_num(r.get("kb_per_conn"), 2),
                f"{fmt_num(r.get('rss_peak_kb'))} kB",
                fmt_num(r.get("kb_per_conn_peak"), 2),
                f"{fmt_num(r.get('rss_after_close_kb'))} kB",
                str(r.get("still_open_after_hold", "-")),
                r["status"] if not r.get("note") else f"{r['status']}: {r['note']}",
            ]
        )
    return head, rows


def text_table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    widths[-1] = len(head[-1])  # the note column is not padded
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def md_table(head: list[str], rows: list[list[str]]) -> str:
    esc = lambda c: c.replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def report(results: dict, fmt, args) -> list[tuple[str, str, str]]:
    parts = []
    for scen, res in results.items():
        if not res:
            continue
        title = SCENARIOS[scen].title
        head, rows = memory_table(res, args) if scen == "memory" else load_table(scen, res)
        parts.append((scen, title, fmt(head, rows)))
    ratios = ratio_rows(results)
    if ratios:
        parts.append(
            ("ratios", "ratios and targets", fmt(["comparison", "value", "target", "verdict"], ratios))
        )
    return parts


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


def machine_info() -> dict[str, str]:
    from importlib import metadata

    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for dist in (
        "greenserve",
        "gevent",
        "greenlet",
        "gunicorn",
        "waitress",
        "httptools",
        "h11",
        "uvicorn",
        "uvloop",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    commit = tool_version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "greenserve"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        **versions,
        "wrk": tool_version(["wrk", "-v"]).split(" Copyright")[0].removeprefix("wrk "),
        "greenserve commit": commit + (" + uncommitted changes in greenserve/" if dirty else ""),
        "somaxconn": Path("/proc/sys/net/core/somaxconn").read_text().strip(),
        "RLIMIT_NOFILE": str(resource.getrlimit(resource.RLIMIT_NOFILE)[0]),
    }


# --------------------------------------------------------------------------
# Baseline: greenserve at another revision, measured in the same rounds

BASELINE = "greenserve@base"


def export_revision(rev: str, into: Path) -> str:
    """Write the tree of git revision ``rev`` into ``into``; return its short commit id."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "--verify", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if commit.returncode:
        raise SystemExit(f"--baseline {rev}: not a commit in {ROOT}: {commit.stderr.strip()}")
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev], capture_output=True, check=True
    )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        # Our own repository's archive; the "data" filter where this Python has it (3.11.4+).
        tar.extractall(into, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    # Check the server would import that tree and not this checkout (or an installed copy).
    # Not from ROOT: ``-c`` puts the working directory first, the console script does not.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(into), str(ROOT)])}
    where = subprocess.run(
        [sys.executable, "-c", "import greenserve; print(greenserve.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=into.parent,
        check=False,
    ).stdout.strip()
    if not where.startswith(str(into)):
        raise SystemExit(f"--baseline {rev}: greenserve imports from {where or '?'}, not from {into}")
    return commit.stdout.strip()


def add_baseline(rev: str, into: Path, plan: dict[str, list[str]], args) -> str:
    """Register greenserve@REV and measure it wherever this checkout's greenserve is measured."""
    short = export_revision(rev, into)
    SERVERS[BASELINE] = ServerSpec(BASELINE, f"greenserve @ {short} (baseline)", cmd_greenserve, into)
    args.server_args[BASELINE] = args.server_args.get("greenserve", [])
    for servers in plan.values():
        if "greenserve" in servers:
            servers.insert(servers.index("greenserve") + 1, BASELINE)
    return short


# --------------------------------------------------------------------------
# Main


def parse_only(only: str | None) -> dict[str, list[str]]:
    """--only tokens -> {scenario: [servers]} (scenario names, server names, or 'h11')."""
    tokens = [t.strip() for t in (only or "").split(",") if t.strip()]
    tokens = [x for t in tokens for x in GROUPS.get(t, (t,))]
    scen_tokens = [t for t in tokens if t in SCENARIOS or t in ALIASES]
    server_tokens = [t for t in tokens if t in SERVERS]
    unknown = [t for t in tokens if t not in SCENARIOS and t not in ALIASES and t not in SERVERS]
    if unknown:
        raise SystemExit(
            f"unknown --only item(s): {', '.join(unknown)}; "
            f"scenarios: {', '.join([*SCENARIOS, *ALIASES, *GROUPS])}; servers: {', '.join(SERVERS)}"
        )
    plan: dict[str, list[str]] = {}
    for scen in scen_tokens or list(SCENARIOS):
        if scen in ALIASES:
            base, names = ALIASES[scen]
            wanted = list(names) + [s for s in server_tokens if s in SCENARIOS[base].servers]
            prev = plan.get(base, [])
            plan[base] = [s for s in SCENARIOS[base].servers if s in wanted or s in prev]
        else:
            wanted = server_tokens or list(SCENARIOS[scen].servers)
            plan[scen] = [s for s in SCENARIOS[scen].servers if s in wanted]
    return {k: v for k, v in plan.items() if v}


def raise_nofile(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    target = min(target, 1 << 20)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < needed:
        log(f"warning: RLIMIT_NOFILE is {soft} (hard {hard}); {needed} are needed, some scenarios will fail")
    return soft


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="measured rounds per scenario (default 3)")
    p.add_argument("--duration", type=float, default=8, help="seconds per measured wrk run (default 8)")
    p.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per server (default 3)")
    p.add_argument("--pause", type=float, default=1.0, help="seconds of rest between runs (default 1)")
    p.add_argument(
        "--only",
        help="comma-separated scenarios (hello, sleep, h11, memory, asgi-hello, asgi-sleep; "
        "'asgi' and 'wsgi' for groups) and/or servers "
        f"({', '.join(SERVERS)}); default: everything",
    )
    p.add_argument(
        "--max-noise",
        type=float,
        default=15.0,
        help="redo a run when other processes used more than this %% of the server core or of the "
        "client core (default 15)",
    )
    p.add_argument("--retries", type=int, default=2, help="redos allowed per noisy run (default 2)")
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="before each run, wait up to this many seconds for other processes to leave both cores "
        "below --max-noise (default 30; 0: do not wait)",
    )
    p.add_argument("--idle-connections", type=int, default=5000, help="memory scenario (default 5000)")
    p.add_argument(
        "--settle",
        type=float,
        default=2.0,
        help="seconds after opening the idle connections for the early RSS reading (default 2)",
    )
    p.add_argument(
        "--idle-hold",
        type=float,
        default=8.0,
        help="seconds the idle connections are held before the steady-state RSS is read and they are "
        "checked to be still open (default 8: past greenserve's 2 s parking of idle connections and "
        "its default 5 s keep-alive)",
    )
    p.add_argument("--server-cpu", type=int, default=0, help="core for the servers (default 0)")
    p.add_argument("--client-cpu", type=int, default=1, help="core for wrk and the harness (default 1)")
    p.add_argument(
        "--server-args",
        action="append",
        default=[],
        metavar="SERVER=ARGS",
        help=f"extra arguments for one server ({', '.join(TAKES_ARGS)}), "
        "e.g. --server-args 'greenserve=--worker-connections 1100'; repeatable",
    )
    p.add_argument(
        "--baseline",
        metavar="REV",
        help="also measure greenserve at this git revision (e.g. a commit or main~3), in the same rounds "
        "as this checkout, with the same --server-args",
    )
    p.add_argument("--markdown", metavar="PATH", help="also write the results as Markdown")
    p.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    p.add_argument("--keep-raw", action="store_true", help="keep wrk's raw output in the JSON")
    p.add_argument(
        "--plot",
        metavar="SVG",
        help="also draw the req/s bar charts with the targets marked (bench/plot.py; needs matplotlib), "
        "e.g. docs/_static/benchmarks.svg",
    )
    args = p.parse_args(argv)

    plan = parse_only(args.only)
    extra: dict[str, list[str]] = {}
    for item in args.server_args:
        name, sep, rest = item.partition("=")
        if not sep or name not in TAKES_ARGS:
            raise SystemExit(
                f"--server-args {item!r}: expected SERVER=ARGS for one of {', '.join(TAKES_ARGS)}"
            )
        extra.setdefault(name, []).extend(shlex.split(rest))
    args.server_args = extra
    if not shutil.which("wrk") or not shutil.which("taskset"):
        raise SystemExit("wrk and taskset are required")
    if os.cpu_count() and max(args.server_cpu, args.client_cpu) >= os.cpu_count():
        raise SystemExit(f"this machine has {os.cpu_count()} cores; pick --server-cpu/--client-cpu below it")
    nofile = raise_nofile(args.idle_connections * 2 + 200)
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {args.client_cpu})  # keep the harness off the server core

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    logdir = BENCH / "results" / stamp
    logdir.mkdir(parents=True, exist_ok=True)
    baseline_dir = tempfile.TemporaryDirectory(prefix="greenserve-baseline-")
    if args.baseline:
        short = add_baseline(args.baseline, Path(baseline_dir.name), plan, args)
        log(f"baseline: greenserve at {short} ({args.baseline}), from {baseline_dir.name}")
    command = shlex.join(["python", "bench/run.py", *(sys.argv[1:] if argv is None else argv)])
    started = datetime.datetime.now().astimezone()
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    info = machine_info()  # before the run: the greenserve commit measured
    log(f"greenserve benchmark, {started:%Y-%m-%d %H:%M %Z}; logs in {logdir.relative_to(ROOT)}")
    log(f"plan: {json.dumps(plan)}; rounds {args.rounds} x {args.duration:g}s; RLIMIT_NOFILE {nofile}")

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    results: dict[str, dict] = {}
    interrupted = False
    try:
        for scen, servers in plan.items():
            results[scen] = {}
            measure = measure_memory if scen == "memory" else measure_load
            measure(SCENARIOS[scen], servers, args, logdir, results[scen])
    except KeyboardInterrupt:
        interrupted = True
        log("\ninterrupted: stopping servers, reporting what was measured")
    finally:
        PROCS.stop_all()
        baseline_dir.cleanup()
    finished = datetime.datetime.now().astimezone()
    load_after = Path("/proc/loadavg").read_text().split()[:3]

    info["load average before/after"] = f"{' '.join(load_before)} / {' '.join(load_after)}"
    log("")
    for scen, title, table in report(results, text_table, args):
        log(f"--- {scen}: {title}\n{table}\n")
    if args.markdown:
        write_markdown(Path(args.markdown), results, info, command, started, finished, args, interrupted)
        log(f"wrote {args.markdown}")
    payload = {
        "command": command,
        "started": started.isoformat(),
        "finished": finished.isoformat(),
        "interrupted": interrupted,
        "machine": info,
        "results": results,
    }
    for path in filter(None, [args.json, str(logdir / "results.json")]):
        Path(path).write_text(json.dumps(payload, indent=2, default=str))
    if args.plot:
        try:
            sys.path.insert(0, str(BENCH))
            import plot

            plot.draw([payload], Path(args.plot))
            log(f"wrote {args.plot}")
        except ImportError as exc:
            later = logdir / "results.json"
            log(f"--plot: {exc} (pip install matplotlib); run bench/plot.py on {later} later")
    return 130 if interrupted else 0


def write_markdown(path: Path, results, info, command, started, finished, args, interrupted) -> None:
    lines = [
        "# greenserve benchmark results",
        "",
        f"- date: {started:%Y-%m-%d %H:%M %Z} (took {(finished - started).seconds // 60} min "
        f"{(finished - started).seconds % 60} s){' - INTERRUPTED, partial results' if interrupted else ''}",
        f"- command: `{command}`",
        f"- discipline: servers pinned to core {args.server_cpu} (`taskset -c {args.server_cpu}`), "
        f"`wrk -t1` pinned to core {args.client_cpu}; {args.warmup:g} s warm-up per server; "
        f"{args.rounds} rounds of {args.duration:g} s, server order rotated each round; median reported",
        "- machine: " + "; ".join(f"{k} {v}" for k, v in info.items()),
        "",
    ]
    lines += ["## servers", "", "| name | command (PORT: a free port; APP: the scenario's app) |"]
    lines += ["|---|---|"]
    for spec in SERVERS.values():
        base = shlex.join(spec.build("APP", 0, {})).replace(":0", ":PORT").replace(" 0", " PORT")
        base = base.replace(sys.executable, "python").replace(str(ROOT) + "/", "")
        base = re.sub(r"\S*/bin/(greenserve|gunicorn|waitress-serve|uvicorn)", r"\1", base)
        lines.append(f"| {spec.name} | `taskset -c {args.server_cpu} {base}` |")
    lines += [
        "",
        "Memory scenario: greenserve and gunicorn also get `--keep-alive 60 --worker-connections 6000`. "
        "ASGI scenarios: the same greenserve command serves `bench.asgi_apps` (default `--loop auto`, "
        "asyncio on its hub-aware selector).",
        "",
    ]
    for scen, title, table in report(results, md_table, args):
        lines += [f"## {scen}: {title}", "", table, ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
