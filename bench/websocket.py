"""WebSocket echo round trips: greenserve against gunicorn's GeventWebSocketWorker and uvicorn.

A benchmark, not a test: it prints numbers and ratios, it does not assert.
See bench/README.md for how to run it and docs/benchmarks.md for results.

Scenarios (``--only`` takes their names, ``wsgi``, ``asgi`` and server names):

  wsgi-100, wsgi-1000   bench.ws_apps:echo, a gevent-websocket-style handler
                        (``environ["wsgi.websocket"]``, receive/send until None):
                        greenserve against gunicorn -k geventwebsocket...GeventWebSocketWorker
  asgi-100, asgi-1000   bench.ws_apps:asgi_echo, a raw ASGI 3 echo: greenserve (--loop auto)
                        against uvicorn (httptools, uvloop) with --ws websockets (its default
                        when websockets is installed) and with --ws wsproto

Load: bench/ws_client.py (one process, raw sockets, epoll, a pre-built masked
frame) opens N connections, then each sends a 32-byte text message, waits for
the echo and sends again, for --duration seconds. Reported: round trips per
second, p50/p99 round-trip latency, connections that failed to open, and the
client's own share of its core.

Discipline as in bench/run.py: one worker (``-w 1``), the server pinned to
core 0 and the client (and this harness) to core 1, a warm-up run per server,
--rounds rounds with the server order rotated, medians, a noise guard that
redoes runs during which other processes used the cores.

Goals (issue 11): WSGI echo >= 1.5x gunicorn + gevent-websocket; ASGI echo >= 0.8x uvicorn.

Usage: python bench/websocket.py [--rounds 3] [--duration 8] [--only wsgi,asgi-1000,...]
                                 [--json PATH] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # the harness's own process handling, meters and tables
    PROCS,
    ClientMeter,
    CoreMeter,
    check_http,
    fmt_ms,
    fmt_num,
    free_port,
    log,
    machine_info,
    md_table,
    raise_nofile,
    tail,
    text_table,
    wait_port,
    wait_quiet,
)

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORKER_CONNECTIONS = 2000  # above the largest load, for both gevent servers


def _tool(name: str) -> str:
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


def cmd_greenserve(app: str, port: int) -> list[str]:
    return [
        *(_tool("greenserve"), "--no-access-log", "-w", "1", "-b", f"127.0.0.1:{port}"),
        *("--worker-connections", str(WORKER_CONNECTIONS), app),
    ]


def cmd_gunicorn_gws(app: str, port: int) -> list[str]:
    return [
        *(_tool("gunicorn"), "-k", "geventwebsocket.gunicorn.workers.GeventWebSocketWorker"),
        *("-w", "1", "-b", f"127.0.0.1:{port}", "--worker-connections", str(WORKER_CONNECTIONS), app),
    ]


def _uvicorn(ws: str):
    def build(app: str, port: int) -> list[str]:
        return [
            *(_tool("uvicorn"), "--http", "httptools", "--loop", "uvloop", "--ws", ws),
            *("--workers", "1", "--no-access-log", "--host", "127.0.0.1", "--port", str(port), app),
        ]

    return build


@dataclasses.dataclass(frozen=True)
class Server:
    name: str
    label: str
    build: Any


SERVERS = {
    s.name: s
    for s in (
        Server("greenserve", "greenserve -w 1", cmd_greenserve),
        Server("gunicorn-gws", "gunicorn GeventWebSocketWorker -w 1", cmd_gunicorn_gws),
        Server("uvicorn-websockets", "uvicorn --ws websockets", _uvicorn("websockets")),
        Server("uvicorn-wsproto", "uvicorn --ws wsproto", _uvicorn("wsproto")),
    )
}


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    app: str
    connections: int
    servers: tuple[str, ...]
    #: (peer, goal): greenserve's messages/s should reach goal x the peer's.
    goals: tuple[tuple[str, float], ...]


WSGI = ("greenserve", "gunicorn-gws")
ASGI = ("greenserve", "uvicorn-websockets", "uvicorn-wsproto")
WSGI_GOALS = (("gunicorn-gws", 1.5),)
ASGI_GOALS = (("uvicorn-websockets", 0.8), ("uvicorn-wsproto", 0.8))
SCENARIOS = {
    s.name: s
    for s in (
        Scenario("wsgi-100", "bench.ws_apps:echo", 100, WSGI, WSGI_GOALS),
        Scenario("wsgi-1000", "bench.ws_apps:echo", 1000, WSGI, WSGI_GOALS),
        Scenario("asgi-100", "bench.ws_apps:asgi_echo", 100, ASGI, ASGI_GOALS),
        Scenario("asgi-1000", "bench.ws_apps:asgi_echo", 1000, ASGI, ASGI_GOALS),
    )
}
GROUPS = {"wsgi": ("wsgi-100", "wsgi-1000"), "asgi": ("asgi-100", "asgi-1000")}


# --------------------------------------------------------------------------
# Servers and the client


@dataclasses.dataclass
class Running:
    server: Server
    port: int
    proc: subprocess.Popen
    log: Path
    error: str | None = None


def ws_echo_check(port: int, timeout: float = 10.0) -> str | None:
    """One WebSocket, one message echoed, a clean close: an error text or None."""
    sys.path.insert(0, str(BENCH))
    import ws_client

    payload = b"greenserve bench check"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(ws_client.handshake_request(port, "/"))
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    return "closed during the handshake"
                head += chunk
            if not head.startswith(b"HTTP/1.1 101"):
                return f"handshake answered {head.splitlines()[0]!r}"
            rest = head.split(b"\r\n\r\n", 1)[1]
            sock.sendall(ws_client.masked_frame(0x1, payload))
            expected = ws_client.server_frame(0x1, payload)
            while len(rest) < len(expected):
                chunk = sock.recv(4096)
                if not chunk:
                    return "closed before the echo"
                rest += chunk
            if rest[: len(expected)] != expected:
                return f"echo {rest[:40]!r}"
            sock.sendall(ws_client.masked_frame(0x8, b"\x03\xe8"))
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def start_server(server: Server, scenario: Scenario, args, logdir: Path) -> Running:
    port = free_port()
    argv = ["taskset", "-c", str(args.server_cpu), *server.build(scenario.app, port)]
    path = logdir / f"{scenario.name}-{server.name}.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    with path.open("wb") as out:
        out.write(f"$ {shlex.join(argv)}\n".encode())
        out.flush()
        proc = PROCS.start(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    run = Running(server, port, proc, path)
    if not wait_port(port, proc):
        run.error = f"did not start (exit {proc.poll()}): {tail(path)}"
    else:
        run.error = check_http(port) or ws_echo_check(port)
    if run.error:
        PROCS.stop(proc)
    return run


def run_client(port: int, connections: int, duration: float, args) -> dict:
    argv = [
        *("taskset", "-c", str(args.client_cpu), sys.executable, str(BENCH / "ws_client.py")),
        *(str(port), str(connections), str(duration), "--size", str(args.size)),
    ]
    proc = PROCS.start(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=duration + 120)
    except subprocess.TimeoutExpired:
        PROCS.stop(proc)
        return {"rate": None, "failed": "client hung"}
    finally:
        PROCS.stop(proc, grace=0.1)
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"rate": None, "failed": f"client exit {proc.returncode}: {err.strip()[-300:]}"}


# --------------------------------------------------------------------------
# Measuring


def measure(scenario: Scenario, servers: list[str], args, logdir: Path, results: dict) -> None:
    log(
        f"\n=== {scenario.name}: {scenario.connections} connections,"
        f" {args.size}-byte ping-pong ({scenario.app})"
    )
    running: dict[str, Running] = {}
    try:
        for name in servers:
            run = start_server(SERVERS[name], scenario, args, logdir)
            results[name] = {"status": "ok", "note": "", "runs": []}
            if run.error:
                log(f"  {name:20s} failed: {run.error}")
                results[name].update(status="failed", note=run.error)
            else:
                running[name] = run
        for name, run in running.items():
            log(f"  warm-up {name} ({args.warmup:g}s)")
            run_client(run.port, scenario.connections, args.warmup, args)
            time.sleep(args.pause)
        order = list(running)
        for rnd in range(args.rounds):
            shift = rnd % len(order) if order else 0
            this_round = order[shift:] + order[:shift]
            log(f"  round {rnd + 1}/{args.rounds}: {' '.join(this_round)}")
            for name in this_round:
                run = running[name]
                if run.proc.poll() is not None:
                    results[name].update(status="failed", note=f"server died: {tail(run.log)}")
                    continue
                for attempt in range(args.retries + 1):
                    if args.quiet_wait > 0:
                        waited = wait_quiet(
                            (args.server_cpu, args.client_cpu), args.max_noise, args.quiet_wait
                        )
                        if waited >= 1.0:
                            log(f"    (waited {waited:.0f}s for the cores to be quiet)")
                    meter, client_meter = (
                        CoreMeter(args.server_cpu, run.proc.pid),
                        ClientMeter(args.client_cpu),
                    )
                    res = run_client(run.port, scenario.connections, args.duration, args)
                    res["server_cpu"], res["noise_cpu"] = meter.done()
                    res["client_core_cpu"], res["client_noise_cpu"] = client_meter.done()
                    res["attempts"] = attempt + 1
                    noise = max(res["noise_cpu"], res["client_noise_cpu"])
                    if noise <= args.max_noise or attempt == args.retries:
                        break
                    log(f"    {name:20s} discarded: others used {noise:.0f}% of a core; again")
                    time.sleep(args.pause)
                results[name]["runs"].append(res)
                log(
                    f"    {name:20s} {fmt_num(res.get('rate')):>8s} msg/s"
                    f"  p50 {fmt_ms(res.get('p50_ms')):>9s}"
                    f"  p99 {fmt_ms(res.get('p99_ms')):>9s}  failed to open {res.get('failed_to_open', '-')}"
                    f"  dropped {res.get('dropped', '-')}  client {fmt_num(res.get('client_cpu'))}%"
                    f"  core{args.server_cpu}: server {res['server_cpu']:.0f}% other {res['noise_cpu']:.0f}%"
                    + (f"  FAILED {res['failed']}" if res.get("failed") else "")
                )
                time.sleep(args.pause)
    finally:
        for run in running.values():
            PROCS.stop(run.proc)
    for r in results.values():
        runs = [x for x in r["runs"] if x.get("rate") is not None]
        if not runs:
            if r["status"] == "ok":
                r.update(status="failed", note=r["note"] or "no measured run")
            continue

        def med(key: str, runs: list = runs) -> float:
            return statistics.median(x[key] for x in runs if x.get(key) is not None)

        r["median_rate"] = med("rate")
        r["min_rate"], r["max_rate"] = min(x["rate"] for x in runs), max(x["rate"] for x in runs)
        r["p50_ms"], r["p99_ms"] = med("p50_ms"), med("p99_ms")
        r["failed_to_open"] = max(x.get("failed_to_open", 0) for x in runs)
        r["dropped"] = max(x.get("dropped", 0) for x in runs)
        r["server_cpu"], r["client_cpu"] = med("server_cpu"), med("client_cpu")
        r["noise_cpu_max"] = max(max(x["noise_cpu"], x["client_noise_cpu"]) for x in runs)


# --------------------------------------------------------------------------
# Report


def tables(results: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    head = [
        "server",
        "round trips/s (median)",
        "min-max",
        "p50",
        "p99",
        "failed to open",
        "dropped",
        "server core",
        "client core",
        "others (max)",
        "status",
    ]
    out = []
    for scen, res in results.items():
        rows = []
        for name, r in res.items():
            if "median_rate" not in r:
                rows.append([SERVERS[name].label, "NA", *["-"] * 8, f"{r['status']}: {r['note']}"])
                continue
            rows.append(
                [
                    SERVERS[name].label,
                    fmt_num(r["median_rate"]),
                    f"{fmt_num(r['min_rate'])}-{fmt_num(r['max_rate'])}",
                    fmt_ms(r["p50_ms"]),
                    fmt_ms(r["p99_ms"]),
                    str(r["failed_to_open"]),
                    str(r["dropped"]),
                    f"{r['server_cpu']:.0f}%",
                    f"{r['client_cpu']:.0f}%",
                    f"{r['noise_cpu_max']:.0f}%",
                    r["status"] + (f": {r['note']}" if r["note"] else ""),
                ]
            )
        out.append((scen, head, rows))
    ratios = []
    for scen, res in results.items():
        mine = res.get("greenserve", {}).get("median_rate")
        for peer, goal in SCENARIOS[scen].goals:
            theirs = res.get(peer, {}).get("median_rate")
            if mine and theirs:
                value = mine / theirs
                verdict = "met" if value >= goal else "NOT met"
                ratios.append([f"{scen}: greenserve / {peer}", f"{value:.2f}x", f">= {goal:g}x", verdict])
    if ratios:
        out.append(("ratios", ["comparison", "value", "goal", "verdict"], ratios))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="measured rounds per scenario (default 3)")
    p.add_argument(
        "--duration", type=float, default=8, help="seconds of ping-pong per measured run (default 8)"
    )
    p.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per server (default 3)")
    p.add_argument("--pause", type=float, default=1.0, help="seconds of rest between runs (default 1)")
    p.add_argument("--size", type=int, default=32, help="message size in bytes (default 32)")
    p.add_argument(
        "--only",
        help=f"comma-separated scenarios ({', '.join(SCENARIOS)}; 'wsgi', 'asgi') and/or servers "
        f"({', '.join(SERVERS)}); default: everything",
    )
    p.add_argument(
        "--max-noise",
        type=float,
        default=15.0,
        help="redo a run when others used more than this %% of a core",
    )
    p.add_argument("--retries", type=int, default=2, help="redos allowed per noisy run (default 2)")
    p.add_argument(
        "--quiet-wait", type=float, default=30.0, help="wait up to this long for quiet cores (default 30)"
    )
    p.add_argument("--server-cpu", type=int, default=0, help="core for the servers (default 0)")
    p.add_argument(
        "--client-cpu", type=int, default=1, help="core for the client and the harness (default 1)"
    )
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--markdown", metavar="PATH", help="also write the tables as Markdown")
    args = p.parse_args(argv)

    tokens = [t.strip() for t in (args.only or "").split(",") if t.strip()]
    tokens = [x for t in tokens for x in GROUPS.get(t, (t,))]
    unknown = [t for t in tokens if t not in SCENARIOS and t not in SERVERS]
    if unknown:
        raise SystemExit(f"unknown --only item(s): {', '.join(unknown)}")
    scenarios = [t for t in tokens if t in SCENARIOS] or list(SCENARIOS)
    wanted = [t for t in tokens if t in SERVERS]
    plan = {s: [n for n in SCENARIOS[s].servers if not wanted or n in wanted] for s in scenarios}
    plan = {s: names for s, names in plan.items() if names}
    if not shutil.which("taskset"):
        raise SystemExit("taskset is required")
    if os.cpu_count() and max(args.server_cpu, args.client_cpu) >= os.cpu_count():
        raise SystemExit(f"this machine has {os.cpu_count()} cores; pick --server-cpu/--client-cpu below it")
    nofile = raise_nofile(2 * max(SCENARIOS[s].connections for s in plan) + 200)
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {args.client_cpu})

    uptime = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    log(f"uptime: {uptime}")
    load1 = float(Path("/proc/loadavg").read_text().split()[0])
    if load1 > 0.5:
        log(
            f"WARNING: load average {load1:.2f}: the machine is not quiet, treat these figures as provisional"
        )

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    logdir = BENCH / "results" / f"websocket-{stamp}"
    logdir.mkdir(parents=True, exist_ok=True)
    command = shlex.join(["python", "bench/websocket.py", *(sys.argv[1:] if argv is None else argv)])
    started = datetime.datetime.now().astimezone()
    info = machine_info()
    from importlib import metadata

    for dist in ("gevent-websocket", "websockets", "wsproto"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            info[dist] = metadata.version(dist)
    log(
        f"plan: {json.dumps(plan)}; rounds {args.rounds} x {args.duration:g}s;"
        f" RLIMIT_NOFILE {nofile}; logs in {logdir}"
    )

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    results: dict[str, dict] = {}
    interrupted = False
    try:
        for scen, servers in plan.items():
            results[scen] = {}
            measure(SCENARIOS[scen], servers, args, logdir, results[scen])
    except KeyboardInterrupt:
        interrupted = True
        log("\ninterrupted: stopping servers, reporting what was measured")
    finally:
        PROCS.stop_all()
    info["load average before/after"] = f"{load1:.2f} / {Path('/proc/loadavg').read_text().split()[0]}"
    log("")
    for scen, head, rows in tables(results):
        log(f"--- {scen}\n{text_table(head, rows)}\n")
    if args.markdown:
        lines = [f"# WebSocket echo benchmark, {started:%Y-%m-%d %H:%M %Z}", "", f"- command: `{command}`"]
        lines += ["- machine: " + "; ".join(f"{k} {v}" for k, v in info.items()), ""]
        for scen, head, rows in tables(results):
            lines += [f"## {scen}", "", md_table(head, rows), ""]
        Path(args.markdown).write_text("\n".join(lines))
    payload = {"command": command, "started": started.isoformat(), "interrupted": interrupted}
    payload.update(machine=info, uptime=uptime, results=results)
    for path in filter(None, [args.json, str(logdir / "results.json")]):
        Path(path).write_text(json.dumps(payload, indent=2, default=str))
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
