"""Process settings: pidfile, process names, heartbeat directory, user/group, log reopening, reuse-port."""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from tests.conftest import ROOT, wait_until

from .conftest import APPS, cmdline, fd_targets, http_get, proc_ids

pytestmark = pytest.mark.timeout(60)


def test_pidfile_is_written_and_removed(master, tmp_path):
    pidfile = tmp_path / "run" / "greenserve.pid"
    pidfile.parent.mkdir()
    server = master("mapp:app", "-w", "1", "--pidfile", str(pidfile))
    assert pidfile.read_text() == f"{server.pid}\n"
    assert server.stop(signal.SIGTERM, timeout=10) == 0
    assert not pidfile.exists()
    assert list(pidfile.parent.iterdir()) == []  # no temporary file left behind


def _title_becomes(pid: int, title: str) -> bool:
    return wait_until(lambda: cmdline(pid) == title, 5)


def test_process_titles_show_the_role_generation_and_state(master):
    if not os.path.isdir("/proc/self"):
        pytest.skip("titles are read from /proc/<pid>/cmdline, and this system has no /proc")
    # --timeout 2: the supervisor greenlet, which refreshes the title, runs every 0.5 s.
    server = master("mapp:app", "-w", "2", "--proc-name", "gs-title", "--timeout", "2")
    workers = server.wait_workers(lambda pids: len(pids) == 2)
    assert cmdline(server.pid) == "greenserve: master [gs-title]"
    for pid in workers:
        assert _title_becomes(pid, "greenserve: worker [gs-title] gen 1 idle"), cmdline(pid)

    # A request in progress: its worker says so, then goes back to idle.
    slow = threading.Thread(target=http_get, args=(server.address, "/sleep?s=2"), daemon=True)
    slow.start()
    busy = "greenserve: worker [gs-title] gen 1 busy 1/1000"
    assert wait_until(lambda: any(cmdline(pid) == busy for pid in workers), 5), [cmdline(p) for p in workers]
    slow.join(10)
    assert wait_until(lambda: all(cmdline(pid).endswith(" gen 1 idle") for pid in workers), 5)

    # A reload makes a new generation of workers.
    server.send_signal(signal.SIGHUP)
    new = server.wait_workers(lambda pids: len(pids) == 2 and not set(pids) & set(workers))
    for pid in new:
        assert _title_becomes(pid, "greenserve: worker [gs-title] gen 2 idle"), cmdline(pid)


def test_the_default_name_is_the_application(master):
    if not os.path.isdir("/proc/self"):
        pytest.skip("titles are read from /proc/<pid>/cmdline, and this system has no /proc")
    server = master("mapp:app", "-w", "1")
    assert cmdline(server.pid) == "greenserve: master [mapp:app]"
    (worker,) = server.wait_workers(lambda pids: len(pids) == 1)
    assert wait_until(lambda: cmdline(worker).startswith("greenserve: worker [mapp:app] gen 1 "), 5)


def test_worker_tmp_dir_holds_the_unlinked_heartbeat_files(master, tmp_path):
    beats = tmp_path / "beats"
    beats.mkdir()
    server = master("mapp:app", "-w", "2", "--worker-tmp-dir", str(beats))
    workers = server.wait_workers(lambda pids: len(pids) == 2)
    pattern = re.compile(rf"^{re.escape(str(beats))}/greenserve-heartbeat-\S+ \(deleted\)$")
    in_master = [target for target in fd_targets(server.pid) if pattern.match(target)]
    assert len(in_master) == 2, fd_targets(server.pid)
    for pid in workers:
        assert any(pattern.match(target) for target in fd_targets(pid)), fd_targets(pid)
    assert list(beats.iterdir()) == []  # unlinked: nothing to clean up


def _nobody_ids() -> tuple[int, int]:
    if os.geteuid() != 0:
        pytest.skip("switching users needs root")
    try:
        return pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    except KeyError:
        pytest.skip("no nobody/nogroup on this system")


def _readable_by_anyone(path: str) -> bool:
    """Can any user (``nobody``) reach and read ``path``? (root-owned trees: the 'other' bits)."""
    current = os.path.abspath(path)
    if not os.stat(current).st_mode & stat.S_IROTH:
        return False
    while current != os.path.dirname(current):
        current = os.path.dirname(current)
        if not os.stat(current).st_mode & stat.S_IXOTH:
            return False
    return True


def test_user_and_group_apply_to_workers_not_the_master(master):
    """Workers run as ``--user``; the master stays root.

    gevent and the server's code are imported before the switch, so this
    works even where the interpreter lives under an unreadable /root (pyenv);
    ``nobody`` only has to read the application.
    """
    nobody, nogroup = _nobody_ids()
    if not _readable_by_anyone(str(APPS)):
        pytest.skip(f"'nobody' cannot read the test application in {APPS}")
    server = master("mapp:app", "-w", "1", "--user", "nobody", "--group", "nogroup")
    (worker,) = server.wait_workers(lambda pids: len(pids) == 1)
    assert proc_ids(worker) == (nobody, nogroup)
    assert proc_ids(server.pid) == (0, 0)
    assert server.get("/") == (200, str(worker).encode())
    # New workers drop privileges too.
    server.send_signal(signal.SIGTTIN)
    workers = server.wait_workers(lambda pids: len(pids) == 2)
    # A new worker is root until it has patched (a few ms): wait for the switch.
    assert wait_until(lambda: all(proc_ids(pid) == (nobody, nogroup) for pid in workers), 10)


_PUBLIC_APPS = {
    "wsgi": (
        "import os\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [str(os.getpid()).encode()]\n"
    ),
    "asgi": (
        "import os\n"
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': str(os.getpid()).encode()})\n"
    ),
}


@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
def test_user_serves_when_greenserve_itself_is_unreadable_to_it(master, tmp_path, interface):
    """greenserve installed where ``--user`` cannot read it (a virtualenv in a 0700 home).

    Every module of greenserve's a worker may import later (the importer, the
    ASGI bridge and what it imports) is imported before the switch; the
    application itself is readable by the user, as it must be.
    """
    nobody, nogroup = _nobody_ids()
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    shutil.copytree(ROOT / "greenserve", home / "site" / "greenserve")
    public = Path(tempfile.mkdtemp(prefix="greenserve-public-"))
    try:
        public.chmod(0o755)
        (public / "public_app.py").write_text(_PUBLIC_APPS[interface])
        (public / "public_app.py").chmod(0o644)
        if not _readable_by_anyone(str(public / "public_app.py")):
            pytest.skip(f"'nobody' cannot read {public}")
        server = master(
            "public_app:app",
            "-w",
            "1",
            "--user",
            "nobody",
            "--group",
            "nogroup",
            cwd=public,
            env={"PYTHONPATH": str(home / "site")},
        )
        (worker,) = server.wait_workers(lambda pids: len(pids) == 1)
        assert server.get("/") == (200, str(worker).encode()), server.log
        assert proc_ids(worker) == (nobody, nogroup)
        assert "Traceback" not in server.log, server.log
    finally:
        shutil.rmtree(public, ignore_errors=True)


def test_user_who_cannot_read_the_app_stops_the_master_not_a_crash_loop(master, tmp_path):
    """A ``--user`` that cannot read the application can never start a worker.

    Like any import error, that stops the master with one clear line (exit
    code 4) naming the unreadable directory, instead of respawning forever.
    """
    _nobody_ids()
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "private_app.py").write_text((APPS / "mapp.py").read_text())
    server = master(
        "private_app:app", "-w", "1", "--user", "nobody", "--group", "nogroup", cwd=private, ready=None
    )
    try:
        code = server.wait(8)
    except subprocess.TimeoutExpired:
        code = None
    assert code == 4, (
        f"master still running after 8 s ({server.count('Booting worker')} workers booted):\n{server.log}"
    )
    assert server.count(r"Booting worker") == 1, server.log
    assert f"cannot read {private}" in server.log, server.log


def test_usr1_reopens_the_error_log(master, tmp_path):
    logfile = tmp_path / "error.log"
    rotated = tmp_path / "error.log.1"
    server = master("mapp:app", "-w", "1", "--error-logfile", str(logfile), ready=None)
    assert wait_until(lambda: logfile.exists() and "Ready: " in logfile.read_text(), 15), server.log
    port = int(re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", logfile.read_text()).group(1))
    address = ("127.0.0.1", port)
    (worker,) = server.wait_workers(lambda pids: len(pids) == 1)

    logfile.rename(rotated)
    server.send_signal(signal.SIGUSR1)
    assert wait_until(lambda: "SIGUSR1: reopening log files" in rotated.read_text(), 5)
    assert wait_until(logfile.exists, 5), "the master did not reopen its log file"

    # The worker reopens too (the master forwards USR1): its lines go to the new file.
    def worker_logs_to_new_file() -> bool:
        http_get(address, "/log?marker=after-rotation")
        return "app says after-rotation" in logfile.read_text()

    assert wait_until(worker_logs_to_new_file, 5, 0.2), (rotated.read_text(), logfile.read_text())
    server.send_signal(signal.SIGTTIN)
    assert wait_until(lambda: "SIGTTIN: 2 workers" in logfile.read_text(), 5)
    new_lines = logfile.read_text()
    assert f"[{worker}] [WARNING] app says after-rotation" in new_lines
    assert "SIGTTIN" not in rotated.read_text()


def test_usr1_while_a_worker_boots_does_not_kill_it(master, tmp_path):
    """logrotate's USR1 can arrive while a worker is still importing the application."""
    importing = tmp_path / "importing"
    server = master(
        "slow_import:app",
        "-w",
        "1",
        ready=r"Booting worker",
        env={"IMPORT_DELAY": "2", "IMPORT_MARK": str(importing)},
    )
    (worker,) = server.wait_workers(lambda pids: len(pids) == 1)
    # Forked, importing the app: its own USR1 handler is not installed yet.
    assert wait_until(lambda: importing.exists() and importing.read_text() == str(worker), 5), server.log
    server.send_signal(signal.SIGUSR1)
    server.wait_for(r"\] Ready: ", timeout=10)
    assert server.count(r"killed by SIGUSR1") == 0, server.log
    assert server.workers() == [worker], server.log
    assert server.get("/") == (200, str(worker).encode())


def test_reuse_port_workers_each_listen(master):
    server = master("mapp:app", "-w", "2", "--reuse-port")
    workers = server.wait_workers(lambda pids: len(pids) == 2)
    seen = set()
    for _ in range(60):
        status, body = server.get("/")
        assert status == 200
        seen.add(int(body))
        if seen == set(workers):
            break
    assert seen == set(workers)
