"""Scale-out behind nginx: three greenserve masters, upgraded, reloaded and killed under load.

nginx balances over three separate masters (separate processes on separate
ports, as separate hosts would be) with upstream keep-alive, the
configuration docs/deployment.md recommends. While clients keep sending
requests on keep-alive connections to nginx, one instance is upgraded with
``SIGUSR2`` (then its old master stopped), one is reloaded with ``SIGHUP``
and one is killed outright, master and workers, then started again on the
same address. No client may see a failed request: greenserve's drain closes
keep-alive connections cleanly, and nginx retries on another instance what
failed before a response began (``proxy_next_upstream error timeout``).
"""

from __future__ import annotations

import os
import re
import signal

import pytest
from websockets.sync.client import connect

from tests.asgi.conftest import ASGI_APPS
from tests.master.conftest import alive, wait_gone

from .conftest import APPS, KeepAliveLoad, requires

pytestmark = [pytest.mark.timeout(90), requires("nginx")]

#: The http block of the test's nginx.conf: docs/deployment.md shows the same directives.
UPSTREAMS = """\
upstream greenserve {{
{servers}
    keepalive 16;
    keepalive_timeout 4s;
}}

# WebSockets: pass the client's Upgrade on; every other request gets an empty
# Connection header, so that the upstream connection is kept alive.
map $http_upgrade $connection_upgrade {{
    default upgrade;
    ''      '';
}}

server {{
    listen {{listen}};

    location / {{
        proxy_pass http://greenserve;
        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_next_upstream error timeout;
        proxy_connect_timeout 2s;
    }}
}}
"""


def nginx_http_block(ports: list[int]) -> str:
    # fail_timeout: how long nginx leaves a server that failed alone before trying it again.
    servers = "\n".join(f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=2s;" for port in ports)
    return UPSTREAMS.format(servers=servers)


def start_instance(master, name: str, *bind: str):
    """A greenserve master with two workers serving ``instance_app`` as ``name``."""
    args = ["-b", *bind] if bind else []
    return master(
        *args,
        "-w",
        "2",
        "--keep-alive",
        "5",
        "instance_app:app",
        cwd=APPS,
        env={"INSTANCE": name},
        bind=not bind,
    )


def upstream_errors(nginx_log: str, port: int) -> list[str]:
    """The lines of nginx's error log where talking to the instance on ``port`` failed."""
    return [
        line
        for line in nginx_log.splitlines()
        if re.search(r"\[(error|warn|crit|alert)\]", line) and f'upstream: "http://127.0.0.1:{port}/' in line
    ]


def test_upgrade_reload_and_kill_behind_nginx_fail_no_request(master, proxies):
    a = start_instance(master, "a")
    b = start_instance(master, "b")
    c = start_instance(master, "c")
    nginx = proxies.nginx(nginx_http_block([a.port, b.port, c.port]))
    nginx.wait_serving()
    a_workers = a.wait_workers(lambda pids: len(pids) == 2)
    b_workers = b.wait_workers(lambda pids: len(pids) == 2)
    new_a_master = 0

    try:
        with KeepAliveLoad(nginx.address, path="/?delay=0.01", threads=8) as load:
            for name in "abc":
                load.wait_answered(name)

            # a: SIGUSR2 starts a new master on the same sockets; once it is ready, the old one stops.
            a.send_signal(signal.SIGUSR2)
            line = a.wait_for(r"started a new master \(pid \d+\)", timeout=5)
            new_a_master = int(re.search(r"pid (\d+)\)", line).group(1))
            a.wait_for(rf"\[{new_a_master}\] \[INFO\] Ready: 2 worker", timeout=15)
            new_a_workers = a.wait_workers(lambda pids: len(pids) == 2, master_pid=new_a_master)
            # (nginx may well keep every request on its kept-alive connections to the old workers.)
            a.send_signal(signal.SIGTERM)
            assert a.wait(10) == 0, a.log
            assert all(wait_gone(pid, 5) for pid in a_workers)
            load.wait_answered("a", new_a_workers, count=300)

            # b: SIGHUP replaces its workers.
            b.send_signal(signal.SIGHUP)
            new_b_workers = b.wait_workers(
                lambda pids: len(pids) == 2 and not set(pids) & set(b_workers), timeout=15
            )
            assert all(wait_gone(pid, 10) for pid in b_workers)
            load.wait_answered("b", new_b_workers, count=300)

            # c: SIGKILL to the master and its workers (its process group), then a new one on the same port.
            os.killpg(c.pid, signal.SIGKILL)
            c.proc.wait(5)
            master.started.remove(c)  # killed on purpose: nothing left to stop at teardown
            c_again = start_instance(master, "c", f"127.0.0.1:{c.port}")
            assert c_again.port == c.port
            new_c_workers = c_again.wait_workers(lambda pids: len(pids) == 2)
            load.wait_answered("c", new_c_workers, count=300)
            load.run_for(10.0)

        logs = f"{nginx.log}\n--- a ---\n{a.log}\n--- b ---\n{b.log}\n--- c ---\n{c_again.log}"
        assert not load.failures, f"{load.summary()}\n{logs}"
        assert set(load.instances) == {"a", "b", "c"}, load.summary()
        # The drains of a (upgrade) and b (reload) closed nginx's keep-alive connections cleanly:
        # nginx did not even have a request to retry. Only the killed instance failed it some.
        assert not upstream_errors(nginx.log, a.port), logs
        assert not upstream_errors(nginx.log, b.port), logs
    finally:
        if new_a_master and alive(new_a_master):
            os.kill(new_a_master, signal.SIGTERM)
            if not wait_gone(new_a_master, 10):
                os.kill(new_a_master, signal.SIGKILL)


def established_to(port: int) -> int:
    """Open TCP connections accepted on ``port`` (the server's side), from ``/proc/net/tcp``."""
    count = 0
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":  # ESTABLISHED
                count += 1
    return count


def test_same_nginx_config_keeps_upstream_connections_and_passes_websockets(master, proxies):
    server = master("-w", "1", "ws_app:app", cwd=ASGI_APPS, graceful_timeout=2)
    nginx = proxies.nginx(nginx_http_block([server.port]))
    nginx.wait_serving()

    # Twenty requests, each on a new client connection to nginx, all on one connection to greenserve.
    for _ in range(20):
        assert nginx.get("/") == (200, b"http")
    assert established_to(server.port) == 1

    # A WebSocket through the same location: the Upgrade goes through.
    with connect(f"ws://{nginx.address[0]}:{nginx.address[1]}/echo", open_timeout=5, close_timeout=2) as ws:
        ws.send("through nginx")
        assert ws.recv(timeout=5) == "through nginx"
    assert nginx.get("/") == (200, b"http")


def test_stopping_an_instance_behind_nginx_cuts_no_request(master, proxies):
    """SIGTERM takes one instance away for good (a host going down for maintenance), then it comes back.

    Its requests in progress finish; nginx finds the port closed (a refused
    connection, which it retries on the other instance) and never a request
    cut in the middle.
    """
    a = start_instance(master, "a")
    b = start_instance(master, "b")
    nginx = proxies.nginx(nginx_http_block([a.port, b.port]))
    nginx.wait_serving()
    with KeepAliveLoad(nginx.address, path="/?delay=0.01", threads=8) as load:
        load.wait_answered("b", count=100)
        b.send_signal(signal.SIGTERM)
        assert b.wait(10) == 0, b.log
        served_by_b = load.answered_by("b")
        load.wait_answered("a", count=load.answered_by("a") + 300)
        assert load.answered_by("b") == served_by_b
        b_again = start_instance(master, "b", f"127.0.0.1:{b.port}")
        load.wait_answered("b", b_again.wait_workers(lambda pids: len(pids) == 2), count=100)

    logs = f"{nginx.log}\n--- b ---\n{b.log}\n--- b again ---\n{b_again.log}"
    assert not load.failures, f"{load.summary()}\n{logs}"
    assert not upstream_errors(nginx.log, a.port), logs
    # Refused while connecting (nginx then tries a), never failed while reading a response.
    cut = [line for line in upstream_errors(nginx.log, b.port) if "while connecting to upstream" not in line]
    assert not cut, logs
