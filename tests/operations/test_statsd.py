"""``--statsd-host``: a real master with two workers, heard by a UDP listener in the test.

What a gunicorn dashboard depends on: gunicorn's metric names and line format
(prefix, ``|c|@1.0``, ``|ms``, ``|g``, dogstatsd ``|#tags``), one request
counted per request served, and a statsd that is down never failing a request.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from greenserve import config as config_module
from greenserve.errors import ConfigError
from greenserve.statsd import join_prefix
from tests.conftest import wait_until
from tests.master.conftest import Master, http_get

APPS = Path(__file__).resolve().parent / "apps"
TAGS = "env:test,service:web"

pytestmark = pytest.mark.skipif(os.name != "posix", reason="a pre-fork master: POSIX only")


class StatsdListener:
    """A statsd server as far as the test needs one: every line received, in order."""

    def __init__(self, family: int = socket.AF_INET, address: object = ("127.0.0.1", 0)) -> None:
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.setblocking(False)
        self.received: list[str] = []
        self.datagrams = 0

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def lines(self) -> list[str]:
        """Everything received so far (each datagram may hold several newline-separated lines)."""
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return self.received
            self.datagrams += 1
            self.received += data.decode("ascii").split("\n")

    def count(self, line: str) -> int:
        return self.lines().count(line)

    def wait_count(self, line: str, count: int, timeout: float = 10.0) -> None:
        assert wait_until(lambda: self.count(line) >= count, timeout), (
            f"{line!r} seen {self.count(line)} times, not {count}: {self.lines()[-20:]}"
        )

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener():
    udp = StatsdListener()
    yield udp
    udp.close()


def start(master, statsd_host: str, *args: str, workers: int = 2) -> Master:
    return master("statsd_app:app", "-w", str(workers), "--statsd-host", statsd_host, *args, cwd=APPS)


def test_requests_durations_statuses_prefix_tags_and_workers(master, listener):
    """gunicorn's per-request metrics, one increment per request, under a prefix and tags."""
    server = start(master, f"127.0.0.1:{listener.port}", "--statsd-prefix", "web", "--dogstatsd-tags", TAGS)
    listener.wait_count(f"web.gunicorn.workers:2|g|#{TAGS}", 1)
    codes = [200] * 12 + [404] * 5 + [503] * 3
    for code in codes:
        status, _ = http_get(server.address, "/" if code == 200 else f"/status?code={code}")
        assert status == code
    listener.wait_count(f"web.gunicorn.requests:1|c|@1.0|#{TAGS}", len(codes))
    lines = listener.lines()
    # Exactly as many as served: the listener saw nothing twice and nothing extra.
    assert lines.count(f"web.gunicorn.requests:1|c|@1.0|#{TAGS}") == len(codes)
    status_line = re.compile(rf"web\.gunicorn\.request\.status\.(\d+):1\|c\|@1\.0\|#{TAGS}")
    duration_line = re.compile(rf"web\.gunicorn\.request\.duration:(\d+\.\d{{3}})\|ms\|#{TAGS}")
    statuses = Counter(int(m.group(1)) for m in map(status_line.fullmatch, lines) if m)
    assert statuses == Counter(codes)
    durations = [float(m.group(1)) for m in map(duration_line.fullmatch, lines) if m]
    assert len(durations) == len(codes)
    assert all(0 <= ms < 5000 for ms in durations)
    # Every line is gunicorn's: the prefix joined with one dot, the tags last.
    assert all(line.startswith("web.gunicorn.") and line.endswith(f"|#{TAGS}") for line in lines), lines
    # One datagram per request (three lines), not three.
    assert listener.datagrams < len(lines)


def test_log_counters_from_workers_and_master(master, listener):
    """An application that raises is gunicorn.log.exception; warnings and the master's errors count too."""
    server = start(master, f"127.0.0.1:{listener.port}")
    listener.wait_count("gunicorn.workers:2|g", 1)
    status, _ = http_get(server.address, "/boom")
    assert status == 500
    listener.wait_count("gunicorn.log.exception:1|c|@1.0", 1)
    listener.wait_count("gunicorn.request.status.500:1|c|@1.0", 1)
    status, _ = http_get(server.address, "/warn")
    assert status == 200
    listener.wait_count("gunicorn.log.warning:1|c|@1.0", 1)
    errors = listener.count("gunicorn.log.error:1|c|@1.0")
    # A worker killed: the master logs an error ("died unexpectedly") and counts it.
    victim = server.workers()[0]
    os.kill(victim, signal.SIGKILL)
    listener.wait_count("gunicorn.log.error:1|c|@1.0", errors + 1)
    server.wait_for(rf"Worker {victim} died unexpectedly")  # the error counted (the log is read later)
    # No prefix: names start with gunicorn. and carry no tags.
    assert all(line.startswith("gunicorn.") and "|#" not in line for line in listener.lines())


def test_unix_datagram_socket(master, tmp_path):
    """``unix:PATH``: the same lines to a Unix datagram socket (datadog agent, statsd_exporter)."""
    path = tmp_path / "statsd.sock"
    unix = StatsdListener(socket.AF_UNIX, str(path))
    try:
        server = start(master, f"unix:{path}", "--statsd-prefix", "app.", workers=1)
        for _ in range(5):
            assert http_get(server.address)[0] == 200
        unix.wait_count("app.gunicorn.requests:1|c|@1.0", 5)
        unix.wait_count("app.gunicorn.workers:1|g", 1)
    finally:
        unix.close()


def test_statsd_down_never_fails_a_request(master):
    """A closed UDP port (ICMP port unreachable): every request succeeds, one warning per process at most."""
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    server = start(master, f"127.0.0.1:{port}")
    for _ in range(30):
        status, body = http_get(server.address)
        assert status == 200 and body.isdigit()
    warning = r"statsd: cannot send to 127\.0\.0\.1:\d+ \(Connection refused\)"
    assert wait_until(lambda: server.count(warning) >= 1), server.log
    warnings = [line for line in server.log.splitlines() if re.search(warning, line)]
    processes = {line.split("] [")[1] for line in warnings}
    assert len(warnings) == len(processes) <= 3  # master + 2 workers, each at most once
    assert "Traceback" not in server.log


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("localhost:statsd", "the port must be a number from 1 to 65535"),
        ("127.0.0.1:70000", "the port must be a number from 1 to 65535"),
        ("::1:8125", "an IPv6 address needs brackets"),
        ("unix:", "no socket path after 'unix:'"),
        (":8125", "no host name"),
        ("bad..name:8125", "not a valid host name"),
    ],
)
def test_bad_statsd_host_is_a_config_error(value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_module.from_mapping({"statsd_host": value}, "test")


def test_bad_statsd_host_on_the_command_line_is_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "greenserve", "--statsd-host", "localhost:statsd", "statsd_app:app"],
        cwd=APPS,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "greenserve: error: command line: --statsd-host: 'localhost:statsd': the port must be a number "
        "from 1 to 65535 (expected HOST:PORT, [IPv6]:PORT or unix:PATH)"
    ]


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ({"statsd_host": "localhost"}, {"statsd_host": "localhost"}),
        ({"statsd_host": "[::1]:9125"}, {"statsd_host": "[::1]:9125"}),
        ({"statsd_host": "unix:///run/statsd.sock"}, {"statsd_host": "unix:///run/statsd.sock"}),
        ({"dogstatsd_tags": " env:prod , service:web ,"}, {"dogstatsd_tags": "env:prod,service:web"}),
        ({"dogstatsd_tags": ["env:prod", "team"]}, {"dogstatsd_tags": "env:prod,team"}),
    ],
)
def test_statsd_settings_accepted(raw, parsed):
    config = config_module.from_mapping(raw, "test")
    assert {name: getattr(config, name) for name in parsed} == parsed


@pytest.mark.parametrize("value", ["my app", "a:b", "a|b"])
def test_bad_prefix_is_a_config_error(value):
    with pytest.raises(ConfigError, match="statsd_prefix: the prefix"):
        config_module.from_mapping({"statsd_prefix": value}, "test")


@pytest.mark.parametrize(
    ("prefix", "joined"), [("", ""), ("web", "web."), ("web.", "web."), ("web...", "web."), ("a.b", "a.b.")]
)
def test_prefix_joined_as_gunicorn_joins_it(prefix, joined):
    assert join_prefix(prefix) == joined


def test_percent_in_prefix_and_tags_is_sent_as_is():
    """The request line is a %-template: a ``%`` in the prefix or a tag must come out unchanged."""
    from greenserve.statsd import Statsd

    udp = StatsdListener()
    client = Statsd(f"127.0.0.1:{udp.port}", "a%sb", "rate:100%")
    try:
        client.request(201, 0.0015)
        client.request(0, 0.25)
        udp.wait_count("a%sb.gunicorn.requests:1|c|@1.0|#rate:100%", 2)
        assert udp.lines() == [
            "a%sb.gunicorn.request.duration:1.500|ms|#rate:100%",
            "a%sb.gunicorn.requests:1|c|@1.0|#rate:100%",
            "a%sb.gunicorn.request.status.201:1|c|@1.0|#rate:100%",
            "a%sb.gunicorn.request.duration:250.000|ms|#rate:100%",
            "a%sb.gunicorn.requests:1|c|@1.0|#rate:100%",
        ]
        assert client.dropped == 0
    finally:
        client.close()
        udp.close()


def test_hup_with_a_new_statsd_host_moves_master_and_workers(master, tmp_path):
    """SIGHUP after the configuration file changed: the new workers and the master send to the new host."""
    first, second = StatsdListener(), StatsdListener()
    conf = tmp_path / "greenserve.conf.py"
    conf.write_text(f'statsd_host = "127.0.0.1:{first.port}"\nstatsd_prefix = "one"\n')
    try:
        server = master("statsd_app:app", "-w", "2", "--config", str(conf), cwd=APPS)
        first.wait_count("one.gunicorn.workers:2|g", 1)
        conf.write_text(f'statsd_host = "127.0.0.1:{second.port}"\nstatsd_prefix = "two"\n')
        old = set(server.workers())
        server.proc.send_signal(signal.SIGHUP)
        second.wait_count("two.gunicorn.workers:2|g", 1)
        server.wait_workers(lambda pids: len(pids) == 2 and not set(pids) & old)
        for _ in range(4):
            assert http_get(server.address)[0] == 200
        second.wait_count("two.gunicorn.requests:1|c|@1.0", 4)
        assert first.count("one.gunicorn.requests:1|c|@1.0") == 0
    finally:
        first.close()
        second.close()
