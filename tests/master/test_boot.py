"""Workers that cannot start, or keep dying: a clear stop, or a respawn with backoff."""

from __future__ import annotations

import itertools
import re
import signal
import time

import pytest

from tests.conftest import wait_until

pytestmark = pytest.mark.timeout(60)


def _spawn_times(path) -> list[float]:
    """The times the workers logged to ``path`` (complete lines only: a worker may be writing one)."""
    if not path.exists():
        return []
    return [float(line.split()[1]) for line in path.read_text().split("\n")[:-1] if line.strip()]


def test_app_import_error_stops_the_master_with_exit_4(master):
    started = time.monotonic()
    server = master("broken_import:app", "-w", "2", ready=None)
    code = server.wait(5)
    elapsed = time.monotonic() - started
    assert code == 4, server.log
    assert elapsed < 5.0
    lines = [line for line in server.log.splitlines() if "no_such_module_for_greenserve" in line]
    assert lines, server.log
    # One line says what failed, where: the module and the exception.
    assert any("broken_import" in line and "ModuleNotFoundError" in line for line in lines), lines
    # No respawn loop: each worker booted once at most.
    assert server.count(r"Booting worker") <= 2, server.log
    assert server.count(r"Ready: ") == 0


def test_bad_chdir_stops_the_command_before_the_master_starts(master, tmp_path):
    """Checked before binding (greenserve/preflight.py): one line, exit 2, no worker."""
    missing = tmp_path / "no" / "such" / "dir"
    server = master("mapp:app", "--chdir", str(missing), ready=None)
    code = server.wait(5)
    assert code == 2, server.log
    line = server.wait_for("--chdir")
    assert line == f"greenserve: error: --chdir {missing}: no such directory"
    assert server.lines == [line]  # before it, nothing started


def test_unreadable_tls_key_stops_the_master_with_exit_3_and_the_reason(master, tmp_path):
    """Workers read the TLS files (before any --user switch); a missing one is a boot failure."""
    missing = tmp_path / "missing.pem"
    server = master("mapp:app", "-w", "2", "--certfile", str(missing), "--keyfile", str(missing), ready=None)
    code = server.wait(5)
    assert code == 3, server.log
    # The master's one line says why, not only that a worker failed.
    reason = rf"could not start \(TLS: cannot load --certfile {re.escape(str(missing))}"
    assert re.search(reason, server.log), server.log
    assert server.count(r"Booting worker") <= 2, server.log
    assert server.count(r"Ready: ") == 0


def _backoffs(server) -> list[float]:
    """The delays the master announced before respawning ("next spawn in 1.0 s")."""
    return [float(match) for match in re.findall(r"next spawn in (\d+(?:\.\d+)?) s", server.log)]


def test_app_that_exits_at_import_is_respawned_with_growing_delay(master, tmp_path):
    """``os._exit(1)`` while importing: a crash before ready, not an import error.

    The master cannot tell it from a segfault, so it does not stop: it keeps
    respawning with exponential backoff and stays up.
    """
    spawns = tmp_path / "spawns"
    server = master("exit_at_import:app", "-w", "1", ready=None, env={"SPAWN_LOG": str(spawns)})
    assert wait_until(lambda: len(_spawn_times(spawns)) >= 4, 15), server.log
    times = _spawn_times(spawns)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    delays = _backoffs(server)
    assert delays[:3] == [0.5, 1.0, 2.0], server.log
    # Each respawn really waited (the worker dies right after writing its line).
    assert all(gap >= delay - 0.05 for gap, delay in zip(gaps, delays, strict=False)), (gaps, delays)
    assert server.proc.poll() is None, server.log
    server.wait_for(r"died unexpectedly \(exit code 1\)")
    assert server.count(r"Ready: ") == 0
    assert server.stop(signal.SIGTERM, timeout=5) == 0


def test_worker_crashing_shortly_after_ready_is_respawned_with_growing_delay(master, tmp_path):
    """A worker that serves, then dies 0.3 s later (exit code 7), over and over."""
    spawns = tmp_path / "spawns"
    server = master(
        "crash_after_ready:app",
        "-w",
        "1",
        ready=None,
        env={"SPAWN_LOG": str(spawns), "CRASH_AFTER": "0.3"},
    )
    server.wait_for(r"Ready: ", timeout=10)
    # Five crashes: enough to see a backoff grow (0.5 + 1 + 2 s of waiting at least).
    assert wait_until(lambda: server.count(r"died unexpectedly \(exit code 7\)") >= 5, 20), server.log
    times = _spawn_times(spawns)
    gaps = [round(later - earlier, 2) for earlier, later in itertools.pairwise(times)]
    delays = _backoffs(server)
    assert server.proc.poll() is None, server.log
    assert len(delays) >= 3 and delays == sorted(delays) and delays[-1] > delays[0], (
        f"no growing respawn delay: announced {delays}, gaps between spawns {gaps}"
    )


def test_web_concurrency_sets_the_default_number_of_workers(master):
    server = master("mapp:app", env={"WEB_CONCURRENCY": "3"})
    server.wait_for(r"Using 3 workers")
    workers = server.wait_workers(lambda pids: len(pids) == 3)
    status, body = server.get("/")
    assert status == 200 and int(body) in workers
