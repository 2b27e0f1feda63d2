"""WebSocket echo round trips: greenserve against gunicorn's GeventWebSocketWorker and uvicorn.

A benchmark, not a test: it prints numbers and ratios, it does not assert.
See bench/README.md for how to run it and docs/benchmarks.md for results.

Scenarios (``--only`` takes their names, ``wsgi``, ``asgi`` and server names):

  wsgi-100, wsgi-1000   bench.ws_apps:echo, a gevent-websocket-style handler
                        (``environ["wsgi.websocket"]``, receive/send until None):
                        greenserve against gunicorn -k geventwebsocket...GeventWebSocketWorker
  asgi-100, asgi-1000   bench.ws_apps:asgi_echo, a raw ASGI 3 echo: greenserve (--loop auto)
                        against uvicorn (httptools, uvloop) with each WebSocket
                        implementation: --ws websockets (the legacy websockets API,
                        deprecated in uvicorn 0.55), --ws wsproto and --ws
                        websockets-sansio (what --ws auto picks when websockets is installed)

Load: bench/ws_client.py (one process, raw sockets, epoll, a pre-built masked
frame) opens N connections, then each sends a 32-byte text message, waits for
the echo and sends again, for --duration seconds. Reported: round trips per
second, p50/p99 round-trip latency, connections that failed to open or were
dropped, and the client process's own share of its core: a client at 90% or
more may itself be the limit, and its server's row says "client-bound".

greenserve runs as ``python -m greenserve`` (this interpreter) with this
checkout first on PYTHONPATH, and its worker is asked which ``greenserve`` it
imported (``GET /greenserve-module``): a server that is not this checkout's is
reported as failed, not measured. gunicorn and uvicorn are this interpreter's
console scripts. Run it with an interpreter that has gunicorn, gevent-websocket,
uvicorn, uvloop, httptools, websockets and wsproto installed.

A server that fails to start, answers wrongly, dies, drops connections or echoes
wrongly reads NA in the tables, with the reason; its ratios read NA too.

Discipline as in bench/run.py: one worker (``-w 1``), the server pinned to
core 0 and the client (and this harness) to core 1, a warm-up run per server,
--rounds rounds with the server order rotated, medians, a noise guard that
redoes runs during which other processes used the cores.

Goals (issue 11): WSGI echo >= 1.5x gunicorn + gevent-websocket; ASGI echo >= 0.8x uvicorn.

Usage: python bench/websocket.py [--rounds 3] [--seconds 8] [--only wsgi,asgi-1000,...]
                                 [--json PATH] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import http.client
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
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # the harness's own process handling, meters and tables
    PROCS,
    check_http,
    fmt_ms,
    fmt_num,
    free_port,
    launch,
    log,
    machine_info,
    md_table,
    measure_quietly,
    raise_nofile,
    tail,
    text_table,
    turns,
    wait_port,
)
from ws_apps import MODULE_PATH

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORKER_CONNECTIONS = 2000  # above the largest load, for both gevent servers


def _tool(name: str) -> str:
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


def cmd_greenserve(app: str, port: int) -> list[str]:
    # ``-m greenserve`` with PYTHONPATH=ROOT (start_server): the code under test is this
    # checkout's, even when the interpreter's environment has greenserve installed from
    # elsewhere; start_server asks the worker which greenserve it imported.
    return [
        *(sys.executable, "-m", "greenserve", "--no-access-log", "-w", "1", "-b", f"127.0.0.1:{port}"),
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
        Server("gunicorn-gws", "gunicorn -k GeventWebSocketWorker -w 1", cmd_gunicorn_gws),
        Server("uvicorn-websockets", "uvicorn --ws websockets (uvloop)", _uvicorn("websockets")),
        Server("uvicorn-wsproto", "uvicorn --ws wsproto (uvloop)", _uvicorn("wsproto")),
        Server(
            "uvicorn-websockets-sansio",
            "uvicorn --ws websockets-sansio (uvloop)",
            _uvicorn("websockets-sansio"),
        ),
    )
}
#: greenserve's label by the kind of app it serves.
GREENSERVE_LABELS = {
    "bench.ws_apps:echo": "greenserve -w 1 (WSGI, wsgi.websocket)",
    "bench.ws_apps:asgi_echo": "greenserve -w 1 (ASGI, --loop auto)",
}
#: A client using at least this share of its core may itself limit the rate.
CLIENT_BOUND = 90.0


def label(name: str, scenario: str) -> str:
    if name == "greenserve":
        return GREENSERVE_LABELS.get(SCENARIOS[scenario].app, SERVERS[name].label)
    return SERVERS[name].label


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    app: str
    connections: int
    servers: tuple[str, ...]
    #: (peer, goal): greenserve's messages/s should reach goal x the peer's.
    goals: tuple[tuple[str, float], ...]


WSGI = ("greenserve", "gunicorn-gws")
ASGI = ("greenserve", "uvicorn-websockets", "uvicorn-wsproto", "uvicorn-websockets-sansio")
WSGI_GOALS = (("gunicorn-gws", 1.5),)
ASGI_GOALS = tuple((name, 0.8) for name in ASGI[1:])
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


def greenserve_module(port: int, timeout: float = 10.0) -> str:
    """The ``greenserve`` package file the serving process imported (bench.ws_apps answers it)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", MODULE_PATH, headers={"Host": "bench"})
        return conn.getresponse().read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        return f"({type(exc).__name__}: {exc})"
    finally:
        conn.close()


def start_server(server: Server, scenario: Scenario, args, logdir: Path) -> Running:
    port = free_port()
    argv = ["taskset", "-c", str(args.server_cpu), *server.build(scenario.app, port)]
    path = logdir / f"{scenario.name}-{server.name}.log"
    proc = launch(argv, path)
    run = Running(server, port, proc, path)
    if not wait_port(port, proc):
        run.error = f"did not start (exit {proc.poll()}): {tail(path)}"
    else:
        run.error = check_http(port) or ws_echo_check(port)
    if not run.error and server.name == "greenserve":
        # The code under test must be this checkout's, not an installed greenserve.
        module = greenserve_module(port)
        expected = ROOT / "greenserve" / "__init__.py"
        if Path(module).resolve() != expected:
            run.error = f"served by greenserve from {module!r}, not {expected}"
        elif not args.module_logged:
            args.module_logged = True
            log(f"  greenserve under test (from its worker): {module}")
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
                log(f"  {name:26s} failed: {run.error}")
                results[name].update(status="failed", note=run.error)
            else:
                running[name] = run
        for name, run in running.items():
            log(f"  warm-up {name} ({args.warmup:g}s)")
            run_client(run.port, scenario.connections, args.warmup, args)
            time.sleep(args.pause)
        order = list(running)
        for name, run in turns(order, running, results, args):
            res = measure_quietly(
                f"{name:26s}",
                run.proc.pid,
                partial(run_client, run.port, scenario.connections, args.duration, args),
                args,
            )
            results[name]["runs"].append(res)
            log(
                f"    {name:26s} {fmt_num(res.get('rate')):>8s} msg/s"
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
        summarise(r, scenario, args.max_noise)


def summarise(r: dict, scenario: Scenario, max_noise: float) -> None:
    """Medians of the measured runs, and a status that says when they cannot be trusted."""
    runs = [x for x in r["runs"] if x.get("rate") is not None and not x.get("failed")]
    r["rounds_ok"] = len(runs)
    failed = [x["failed"] for x in r["runs"] if x.get("failed")]
    if failed and r["status"] == "ok":
        r.update(status="failed", note=f"{len(failed)} run(s) failed: {failed[0]}")
    if not runs:
        if r["status"] == "ok":
            r.update(status="failed", note=r["note"] or "no measured run")
        return

    def med(key: str) -> float | None:
        values = [x[key] for x in runs if x.get(key) is not None]
        return statistics.median(values) if values else None

    rates = [x["rate"] for x in runs]
    r["median_rate"], r["min_rate"], r["max_rate"] = med("rate"), min(rates), max(rates)
    r["p50_ms"], r["p99_ms"] = med("p50_ms"), med("p99_ms")
    r["server_cpu"] = med("server_cpu")
    r["client_cpu_max"] = max(x.get("client_cpu", 0.0) for x in runs)
    r["noise_cpu_max"] = max(max(x["noise_cpu"], x["client_noise_cpu"]) for x in runs)
    for key in ("failed_to_open", "dropped", "mismatched", "not_closed_by_server"):
        r[key] = sum(x.get(key, 0) for x in runs)
    notes = []
    if r["not_closed_by_server"]:
        notes.append(
            f"{r['not_closed_by_server']} connection(s) not closed by the server 2 s after a close frame"
        )
    # A server that did not hold every connection, or echoed wrongly, did not serve the scenario.
    if r["failed_to_open"] or r["dropped"] or r["mismatched"]:
        reasons: dict[str, int] = {}
        for x in runs:
            for k, v in x.get("failures", {}).items():
                reasons[k] = reasons.get(k, 0) + v
        why = ", ".join(f"{k} {v}" for k, v in reasons.items())
        notes.append(
            f"{r['failed_to_open']} connection(s) failed to open{f' ({why})' if why else ''}, "
            f"{r['dropped']} dropped, {r['mismatched']} wrong echoes over {len(runs)} run(s) "
            f"of {scenario.connections}"
        )
        if r["status"] == "ok":
            r["status"] = "degraded"
    if r["client_cpu_max"] >= CLIENT_BOUND:
        notes.append(f"client used {r['client_cpu_max']:.0f}% of its core: the client may be the limit")
        if r["status"] == "ok":
            r["status"] = "client-bound"
    noisy = sum(1 for x in runs if max(x["noise_cpu"], x["client_noise_cpu"]) > max_noise)
    if noisy:
        r["noisy_runs"] = noisy
        notes.append(f"{noisy} noisy run(s) kept after retries")
        if r["status"] == "ok":
            r["status"] = "noisy"
    r["note"] = "; ".join(filter(None, [r["note"], *notes]))


# --------------------------------------------------------------------------
# Report


def tables(results: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """One table per scenario, then the ratios to the goals; a failed server reads NA, never a figure."""
    head = [
        "server",
        "messages/s (median)",
        "min-max",
        "p50",
        "p99",
        "rounds",
        "failed to open / dropped",
        "server core",
        "client process (max)",
        "others (max)",
        "status",
    ]
    out = []
    for scen, res in results.items():
        rows = []
        for name, r in res.items():
            status = r["status"] + (f": {r['note']}" if r["note"] else "")
            if "median_rate" not in r:
                rows.append([label(name, scen), "NA", *["-"] * 8, status])
                continue
            rate = fmt_num(r["median_rate"])
            rows.append(
                [
                    label(name, scen),
                    rate if r["status"] in TRUSTED else f"NA ({rate})",
                    f"{fmt_num(r['min_rate'])}-{fmt_num(r['max_rate'])}",
                    fmt_ms(r["p50_ms"]),
                    fmt_ms(r["p99_ms"]),
                    f"{r['rounds_ok']}/{len(r['runs'])}",
                    f"{r['failed_to_open']} / {r['dropped']}",
                    f"{r['server_cpu']:.0f}%",
                    f"{r['client_cpu_max']:.0f}%",
                    f"{r['noise_cpu_max']:.0f}%",
                    status,
                ]
            )
        out.append((scen, head, rows))
    ratios = []
    for scen, res in results.items():
        mine = res.get("greenserve", {})
        for peer, goal in SCENARIOS[scen].goals:
            theirs = res.get(peer)
            if theirs is None or not mine:
                continue
            name = f"{scen}: greenserve / {peer}"
            if mine.get("status") not in TRUSTED or theirs.get("status") not in TRUSTED:
                why = ", ".join(
                    f"{who} {r.get('status')}" for who, r in (("greenserve", mine), (peer, theirs))
                )
                ratios.append([name, "NA", f">= {goal:g}x", f"NA ({why})"])
                continue
            value = mine["median_rate"] / theirs["median_rate"]
            verdict = "met" if value >= goal else "NOT met"
            if "noisy" in (mine["status"], theirs["status"]):
                verdict += " (noisy)"
            ratios.append([name, f"{value:.2f}x", f">= {goal:g}x", verdict])
    if ratios:
        out.append(("ratios", ["comparison", "value", "goal", "verdict"], ratios))
    return out


#: Statuses whose figures are compared (a noisy run is flagged in the verdict, not dropped).
TRUSTED = ("ok", "noisy")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="measured rounds per scenario (default 3)")
    p.add_argument(
        "--duration",
        "--seconds",
        type=float,
        default=8,
        help="seconds of ping-pong per measured run (default 8)",
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
    args.module_logged = False

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
    took = (datetime.datetime.now().astimezone() - started).total_seconds()
    info["took"] = f"{took // 60:.0f} min {took % 60:.0f} s"
    info["load average before/after"] = f"{load1:.2f} / {Path('/proc/loadavg').read_text().split()[0]}"
    log("")
    for scen, head, rows in tables(results):
        log(f"--- {scen}\n{text_table(head, rows)}\n")
    client = [
        x["client_cpu"]
        for res in results.values()
        for r in res.values()
        for x in r["runs"]
        if "client_cpu" in x
    ]
    if client:
        log(
            f"client process: at most {max(client):.0f}% of core {args.client_cpu} in any run"
            + (
                " (below 100%: the client was not the bottleneck)"
                if max(client) < CLIENT_BOUND
                else " (WARNING: near 100%, the client may have limited the rates)"
            )
        )
    log(f"took {info['took']}; load average before/after {info['load average before/after']}")
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
