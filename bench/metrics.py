"""What --metrics-bind costs: greenserve hello with and without it.

A benchmark, not a test: it prints figures and a verdict, it does not assert.
The goal (issue 12): with metrics on, at most 5% fewer requests/s on hello.

Wall clock: ``greenserve --no-access-log -w 1 bench.apps:hello`` pinned to core 0
(``taskset -c 0``, master and worker), ``taskset -c 1 wrk -t1 -c50 -dSECONDS`` on
core 1, keep-alive; metrics off and on alternate within each round (the order
swaps every round), a warm-up wrk run precedes each measured one; medians and
the on/off ratio are reported. With metrics on, the endpoint is scraped once
after each run (it must answer, and count the requests wrk made).

Instructions (``--instructions``): the same two servers under callgrind with
bench/instructions.py (``--single-process``): instructions per request, off
and on. Repeatable within about 0.5%, so it shows what the per-request
counting costs where wall clock, on a shared machine, cannot.

Usage:
    python bench/metrics.py [--rounds 5] [--duration 5] [--warmup 1]
    python bench/metrics.py --instructions [--seconds 20]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import PROCS, free_port, parse_wrk  # the harness's own process handling

ROOT = Path(__file__).resolve().parent.parent
APP = "bench.apps:hello"
GOAL = 0.95  # metrics on: at least 95% of the requests/s with metrics off
METRICS_AT = re.compile(r"Metrics at: (http://\S+/metrics)")


def start(metrics: bool, logdir: Path, label: str) -> tuple[subprocess.Popen, int, str]:
    """A pinned master with one worker; returns (process, port, metrics URL or "")."""
    port = free_port()
    extra = ["--metrics-bind", "127.0.0.1:0"] if metrics else []
    argv = [
        *("taskset", "-c", "0", sys.executable, "-m", "greenserve", "--no-access-log"),
        *("-w", "1", "-b", f"127.0.0.1:{port}", *extra, APP),
    ]
    log_path = logdir / f"{label}.log"
    with log_path.open("w") as log:
        proc = PROCS.start(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if proc.poll() is not None:
            raise SystemExit(f"greenserve exited ({proc.returncode}):\n{text[-2000:]}")
        if "Ready: " in text:
            found = METRICS_AT.search(text)
            return proc, port, found.group(1) if found else ""
        time.sleep(0.1)
    PROCS.stop(proc)
    raise SystemExit(f"greenserve did not start:\n{log_path.read_text(errors='replace')[-2000:]}")


def wrk(port: int, connections: int, seconds: float) -> dict:
    argv = [
        *("taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"),
        f"http://127.0.0.1:{port}/",
    ]
    proc = PROCS.start(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=seconds + 60)
    finally:
        PROCS.stop(proc, grace=0.1)
    result = parse_wrk(out)
    if proc.returncode != 0 or result["rps"] is None:
        raise SystemExit(f"wrk failed ({proc.returncode}):\n{out[-1000:]}")
    return result


def scraped_requests(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return sum(int(float(v)) for v in re.findall(r"^greenserve_requests_total\{[^}]*\} (\S+)$", text, re.M))


def one_run(metrics: bool, args: argparse.Namespace, logdir: Path, label: str) -> dict:
    proc, port, url = start(metrics, logdir, label)
    try:
        if args.warmup:
            wrk(port, args.connections, args.warmup)
        result = wrk(port, args.connections, args.duration)
        if metrics:
            # Workers publish their request counters every 0.25 s: give them a second.
            deadline = time.monotonic() + 1.0
            counted = scraped_requests(url)
            while counted < result["requests"] and time.monotonic() < deadline:
                time.sleep(0.05)
                counted = scraped_requests(url)
            result["scraped"] = counted
            if counted < result["requests"]:
                print(f"    note: /metrics counts {counted} requests, wrk made {result['requests']}")
        return result
    finally:
        PROCS.stop(proc)


def wall_clock(args: argparse.Namespace) -> None:
    runs: dict[bool, list[dict]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="greenserve-bench-metrics-") as tmp:
        for round_ in range(args.rounds):
            order = (False, True) if round_ % 2 == 0 else (True, False)
            for metrics in order:
                name = "on " if metrics else "off"
                result = one_run(metrics, args, Path(tmp), f"r{round_}-{name.strip()}")
                runs[metrics].append(result)
                print(
                    f"round {round_ + 1} metrics {name}: {result['rps']:>10,.0f} req/s  "
                    f"p99 {result['p99_ms'] or 0:.2f} ms",
                    flush=True,
                )
    off = statistics.median(r["rps"] for r in runs[False])
    on = statistics.median(r["rps"] for r in runs[True])
    ratio = on / off
    print()
    print(f"{'':12}{'median req/s':>14}{'min':>10}{'max':>10}{'p99 ms':>9}")
    for metrics, label in ((False, "metrics off"), (True, "metrics on")):
        rps = [r["rps"] for r in runs[metrics]]
        p99 = statistics.median(r["p99_ms"] or 0 for r in runs[metrics])
        print(f"{label:12}{statistics.median(rps):>14,.0f}{min(rps):>10,.0f}{max(rps):>10,.0f}{p99:>9.2f}")
    verdict = "meets" if ratio >= GOAL else "misses"
    print(
        f"\non/off: {ratio:.3f} ({(1 - ratio) * 100:+.1f}% slower); {verdict} the goal of at most 5% slower"
    )


def instructions(args: argparse.Namespace) -> None:
    import instructions as callgrind  # bench/instructions.py

    per_request = {}
    with tempfile.TemporaryDirectory(prefix="greenserve-callgrind-metrics-") as tmp:
        for label, extra in (("off", ()), ("on", ("--metrics-bind", "127.0.0.1:0"))):
            outdir = Path(tmp) / label
            print(f"metrics {label}: baseline run (start, stop), then {args.seconds:g} s of wrk", flush=True)
            try:
                baseline, _ = callgrind.run_server(
                    "greenserve", APP, outdir / "baseline", args.connections, None, extra
                )
                loaded, requests = callgrind.run_server(
                    "greenserve", APP, outdir / "loaded", args.connections, args.seconds, extra
                )
            except callgrind.RunError as exc:
                raise SystemExit(f"callgrind run failed: {exc}") from None
            per_request[label] = (loaded - baseline) / requests
            print(f"    {requests:,} requests, {per_request[label] / 1000:.1f} k Ir/request", flush=True)
        PROCS.stop_all()
    ratio = per_request["on"] / per_request["off"]
    print(f"\ninstructions per request, on/off: {ratio:.3f} ({(ratio - 1) * 100:+.1f}%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds, each one run off and one on (5)")
    parser.add_argument("--duration", type=int, default=5, help="seconds of wrk per measured run (5)")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of wrk before each run (1; 0: none)")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections (50)")
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions with callgrind instead"
    )
    parser.add_argument("--seconds", type=int, default=20, help="--instructions: seconds of wrk per run (20)")
    args = parser.parse_args()
    try:
        if args.instructions:
            instructions(args)
        else:
            wall_clock(args)
    finally:
        PROCS.stop_all()


if __name__ == "__main__":
    main()
