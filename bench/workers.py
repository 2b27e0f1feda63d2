"""Several workers: how connections spread, what a second worker adds, and reloads under load.

A benchmark, not a test: it prints figures and ratios, it does not assert.
greenserve against gunicorn -k gevent, each with ``bench.apps:hello``:

  spread   --workers 2, ``wrk -t1 -c20`` keep-alive: established connections and CPU seconds per
           worker, sampled in the middle of the run (ss -tnp and /proc)
  scale    hello with ``wrk -t1 -c50``, 1 worker against 2, nothing pinned (server and wrk share both
           cores, as on a small VM): the ratio is what the second worker adds
  reloads  --workers 2 under ``wrk -t1 -c20`` (keep-alive) while the master gets HUP x3, TTIN and
           TTOU 2 s apart; then a --max-requests run; then a USR2 upgrade (the old master gets TERM
           once the new one is ready); then SIGTERM with 50 ms requests in flight: wrk's socket
           errors (connect, read, write, timeout) and the requests made. After SIGTERM, wrk's
           reconnections are refused (counted as write errors): read errors are what matters.

Rounds alternate the servers; medians are reported. Usage:

    python bench/workers.py [--rounds 3] [--duration 8] [--only spread,scale,reloads] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import PROCS, free_port, parse_wrk  # the harness's own process handling

ROOT = Path(__file__).resolve().parent.parent


def command(server: str, workers: int, port: int, app: str = "bench.apps:hello", extra: tuple = ()) -> list:
    if server == "greenserve":
        return [
            *(sys.executable, "-m", "greenserve", "--no-access-log", "--graceful-timeout", "10"),
            *("-w", str(workers), "-b", f"127.0.0.1:{port}", *extra, app),
        ]
    return [
        *(sys.executable, "-m", "gunicorn", "-k", "gevent", "--graceful-timeout", "10"),
        *("-w", str(workers), "-b", f"127.0.0.1:{port}", *extra, app),
    ]


def start(server: str, workers: int, app: str = "bench.apps:hello", extra: tuple = ()) -> tuple:
    port = free_port()
    proc = PROCS.start(command(server, workers, port, app, extra), cwd=ROOT, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if len(children(proc.pid)) >= workers and _answers(port):
            return proc, port
        time.sleep(0.1)
    PROCS.stop(proc)
    raise SystemExit(f"{server} -w {workers} did not start")


def _answers(port: int) -> bool:
    import http.client

    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def children(pid: int) -> list[int]:
    result = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(item) for item in result.stdout.split()]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def established_by_pid(port: int) -> dict[int, int]:
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    counts: dict[int, int] = {}
    for pid in re.findall(r"pid=(\d+)", out):
        counts[int(pid)] = counts.get(int(pid), 0) + 1
    return counts


def wrk(port: int, connections: int, seconds: float) -> subprocess.Popen:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout=5s", f"http://127.0.0.1:{port}/"]
    return PROCS.start(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def errors(output: str) -> dict[str, int]:
    match = re.search(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    keys = ("connect", "read", "write", "timeout")
    counts = dict(zip(keys, map(int, match.groups()), strict=True)) if match else dict.fromkeys(keys, 0)
    requests = re.search(r"(\d+) requests in", output)
    counts["requests"] = int(requests.group(1)) if requests else 0
    return counts


# -- the scenarios --------------------------------------------------------------------------


def spread(args: argparse.Namespace) -> list[str]:
    lines = ["| server | connections per worker | CPU seconds per worker | req/s |", "|---|---|---|---|"]
    for server in ("greenserve", "gunicorn"):
        proc, port = start(server, 2)
        workers = children(proc.pid)
        cpu0 = {pid: cpu_seconds(pid) for pid in workers}
        load = wrk(port, 20, args.duration)
        time.sleep(args.duration / 2)
        counts = established_by_pid(port)
        out, _ = load.communicate(timeout=args.duration + 30)
        cpu = {pid: cpu_seconds(pid) - cpu0[pid] for pid in workers}
        PROCS.stop(proc)
        shown = " / ".join(str(counts.get(pid, 0)) for pid in workers)
        used = " / ".join(f"{cpu[pid]:.1f}" for pid in workers)
        rps = parse_wrk(out)["rps"] or 0
        lines.append(f"| {server} -w 2 | {shown} | {used} | {rps:,.0f} |")
        print(lines[-1], flush=True)
    return lines


def scale(args: argparse.Namespace) -> list[str]:
    runs: dict[tuple[str, int], list[float]] = {}
    order = [("greenserve", 1), ("greenserve", 2), ("gunicorn", 1), ("gunicorn", 2)]
    for round_index in range(args.rounds):
        for server, workers in order[round_index % 4 :] + order[: round_index % 4]:
            proc, port = start(server, workers)
            warm = wrk(port, 50, 2)
            warm.communicate(timeout=60)
            load = wrk(port, 50, args.duration)
            out, _ = load.communicate(timeout=args.duration + 60)
            PROCS.stop(proc)
            rps = parse_wrk(out)["rps"] or 0.0
            runs.setdefault((server, workers), []).append(rps)
            print(f"  round {round_index + 1}: {server} -w {workers}: {rps:,.0f} req/s", flush=True)
    lines = ["| server | 1 worker | 2 workers | 2 / 1 |", "|---|---|---|---|"]
    for server in ("greenserve", "gunicorn"):
        one, two = statistics.median(runs[server, 1]), statistics.median(runs[server, 2])
        lines.append(f"| {server} | {one:,.0f} | {two:,.0f} | **{two / one:.2f}x** |")
    return lines


def _signals_under_load(server: str, signals: list[str], extra: tuple = (), seconds: float = 14) -> dict:
    proc, port = start(server, 2, extra=extra)
    load = wrk(port, 20, seconds)
    time.sleep(2)
    for name in signals:
        os.kill(proc.pid, getattr(signal, name))
        time.sleep(2)
    out, _ = load.communicate(timeout=seconds + 60)
    PROCS.stop(proc)
    return errors(out)


def _usr2_under_load(server: str, seconds: float = 12) -> dict:
    proc, port = start(server, 2)
    load = wrk(port, 20, seconds)
    time.sleep(2)
    os.kill(proc.pid, signal.SIGUSR2)
    time.sleep(4)  # the new master and its workers are up
    os.kill(proc.pid, signal.SIGTERM)
    out, _ = load.communicate(timeout=seconds + 60)
    # The new master is a child of the old one's session: stop it too.
    subprocess.run(["pkill", "-f", f"127.0.0.1:{port}"], check=False)
    PROCS.stop(proc)
    return errors(out)


def _term_in_flight(server: str, seconds: float = 6) -> dict:
    proc, port = start(server, 2, app="bench.apps:sleep50")
    load = wrk(port, 20, seconds)
    time.sleep(3)
    os.kill(proc.pid, signal.SIGTERM)
    out, _ = load.communicate(timeout=seconds + 60)
    PROCS.stop(proc)
    return errors(out)


def reloads(args: argparse.Namespace) -> list[str]:
    lines = [
        "| server | what | requests | read errors | connect | write | timeout |",
        "|---|---|---|---|---|---|---|",
    ]
    signals = ["SIGHUP", "SIGHUP", "SIGHUP", "SIGTTIN", "SIGTTOU"]
    retire = ("--max-requests", "50000", "--max-requests-jitter", "5000")
    cases = [
        ("HUP x3, TTIN, TTOU", lambda s: _signals_under_load(s, signals)),
        ("--max-requests 50000 (jitter 5000)", lambda s: _signals_under_load(s, [], retire)),
        ("USR2 upgrade, then TERM to the old master", _usr2_under_load),
        ("SIGTERM, 50 ms requests in flight", _term_in_flight),
    ]
    for what, run in cases:
        for server in ("greenserve", "gunicorn"):
            result = run(server)
            counts = f"{result['connect']} | {result['write']} | {result['timeout']}"
            lines.append(f"| {server} | {what} | {result['requests']:,} | **{result['read']}** | {counts} |")
            print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--only", default="spread,scale,reloads")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    report = [f"# bench/workers.py, {time.strftime('%Y-%m-%d %H:%M %Z')}", ""]
    try:
        for name in args.only.split(","):
            print(f"## {name}", flush=True)
            report += [f"## {name}", "", *globals()[name](args), ""]
    finally:
        PROCS.stop_all()
    text = "\n".join(report)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
