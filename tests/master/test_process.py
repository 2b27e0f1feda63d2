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


def test_proc_name_shows_in_cmdline(master):
    pytest.importorskip("setproctitle")
    server = master("mapp:app", "-w", "2", "--proc-name", "gs-master-test")
    workers = server.wait_workers(lambda pids: len(pids) == 2)
    assert "greenserve: master [gs-master-test]" in cmdline(server.pid)
    for pid in workers:
        assert "greenserve: worker [gs-master-test]" in cmdline(pid)


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


#: ``python -c SHIM ARGS``: greenserve from ``sys.path`` only. An editable install's finder
#: would otherwise find any module the private copy cannot provide in the (readable) checkout.
ONLY_SYS_PATH = (
    "import runpy, sys\n"
    "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in getattr(f, '__module__', '')]\n"
    "sys.argv[0] = 'greenserve'\n"
    "runpy.run_module('greenserve', run_name='__main__')\n"
)


def test_user_switch_with_the_server_code_readable_only_by_root(master, tmp_path):
    """greenserve itself may live where ``--user`` cannot read (a clone or an interpreter under /root).

    The worker imports the code it needs before it drops privileges, so the
    error is still the application's unreadable directory (exit code 4), not
    a ModuleNotFoundError about greenserve's own modules.
    """
    _nobody_ids()
    code = tmp_path / "root-only"
    code.mkdir(mode=0o700)
    shutil.copytree(ROOT / "greenserve", code / "greenserve", ignore=shutil.ignore_patterns("__pycache__"))
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "private_app.py").write_text((APPS / "mapp.py").read_text())
    argv = ["private_app:app", "-w", "1", "--user", "nobody", "--group", "nogroup"]
    server = master(*argv, cwd=private, env={"PYTHONPATH": str(code)}, shim=ONLY_SYS_PATH, ready=None)
    assert server.wait(8) == 4, server.log
    assert f"cannot read {private}" in server.log, server.log
    assert "No module named 'greenserve" not in server.log


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
