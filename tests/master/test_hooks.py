"""Server hooks from a configuration file: each called, in the right process, with its arguments."""

from __future__ import annotations

import json
import signal

import pytest

from tests.conftest import run_cli

from .conftest import APPS, LOG_LINE

pytestmark = pytest.mark.timeout(60)


def test_every_hook_is_called_in_the_right_process(master, tmp_path):
    log = tmp_path / "hooks.jsonl"
    server = master("mapp:app", "-w", "1", "-c", str(APPS / "hooks_conf.py"), env={"HOOK_LOG": str(log)})
    (worker,) = server.wait_workers(lambda pids: len(pids) == 1)
    assert server.get("/") == (200, str(worker).encode())
    assert server.get("/nope")[0] == 404
    assert server.stop(signal.SIGTERM, timeout=10) == 0, server.log

    records = [json.loads(line) for line in log.read_text().splitlines()]
    names = [r["hook"] for r in records]
    by_name = {name: [r for r in records if r["hook"] == name] for name in set(names)}
    master_pid = server.pid

    assert set(names) == {
        "on_starting",
        "when_ready",
        "pre_fork",
        "post_fork",
        "post_worker_init",
        "worker_exit",
        "on_exit",
        "pre_request",
        "post_request",
    }, names
    for name in ("on_starting", "when_ready", "on_exit"):
        (record,) = by_name[name]
        assert record["pid"] == master_pid == record["arbiter_pid"], record
    (pre_fork,) = by_name["pre_fork"]
    assert pre_fork["pid"] == master_pid and pre_fork["age"] == 1
    for name in ("post_fork", "post_worker_init", "worker_exit"):
        (record,) = by_name[name]
        assert record["pid"] == worker == record["worker_pid"], record
        assert record["ppid"] == master_pid
    (post_fork,) = by_name["post_fork"]
    assert post_fork["age"] == 1

    assert [(r["pid"], r["method"], r["path"]) for r in by_name["pre_request"]] == [
        (worker, "GET", "/"),
        (worker, "GET", "/nope"),
    ]
    # The status as an int or a status line: its code is what matters.
    assert [(r["pid"], r["path"], r["status"][:3]) for r in by_name["post_request"]] == [
        (worker, "/", "200"),
        (worker, "/nope", "404"),
    ]

    # Order: starting, fork, worker init, ready ... worker exit, master exit.
    assert names[0] == "on_starting"
    assert names[-1] == "on_exit"
    assert names.index("pre_fork") < names.index("post_fork") < names.index("post_worker_init")
    assert names.index("worker_exit") < names.index("on_exit")
    assert names.index("pre_request") < names.index("post_request")


def test_hooks_written_for_gunicorn_log_through_server_log(master):
    server = master("mapp:app", "-w", "1", "-c", str(APPS / "hooks_log_conf.py"))
    (worker,) = server.wait_workers(lambda pids: len(pids) == 1)
    assert server.get("/")[0] == 200
    assert server.stop(signal.SIGTERM, timeout=10) == 0, server.log
    server.wait_for(r"hook on_exit")  # the last line, once the log pipe is read to its end

    def said(text: str) -> list[tuple[int, str]]:
        return [
            (int(match["pid"]), match["level"])
            for match in map(LOG_LINE.match, server.lines)
            if match and match["message"].startswith(text)
        ]

    assert said("hook on_starting") == [(server.pid, "INFO")]
    assert said(f"hook on_starting {server.pid}")
    assert said("hook post_fork age 1") == [(worker, "INFO")]
    assert said("hook post_worker_init") == [(worker, "WARNING")]
    assert said("hook when_ready with 1 worker(s)") == [(server.pid, "INFO")]
    assert said("hook worker_exit") == [(worker, "INFO")]
    assert said("hook on_exit") == [(server.pid, "ERROR")]
    assert "RuntimeError: logged, not raised" in server.log  # exception() adds the traceback
    assert said("hook pre_fork") == []  # debug, below --log-level info


def test_check_config_says_it_does_not_run_hooks():
    result = run_cli("--check-config", "-c", str(APPS / "hooks_log_conf.py"), "mapp:app", cwd=APPS)
    assert result.returncode == 0, result.stderr
    assert "hook " not in result.stdout + result.stderr  # none of them ran
    assert "hooks not run, only their signatures checked: on_starting, when_ready, pre_fork" in result.stdout


def test_a_hook_with_gunicorns_signature_is_refused_at_startup(tmp_path):
    conf = tmp_path / "gunicorn_style.py"
    conf.write_text("def worker_exit(server, worker):\n    pass\n")
    for command in (["--check-config"], []):
        result = run_cli(*command, "-b", "127.0.0.1:0", "-c", str(conf), "mapp:app", cwd=APPS)
        assert result.returncode == 2, result.stderr
        assert result.stderr == (
            f"greenserve: error: {conf}: worker_exit: worker_exit(server, worker) cannot be called with "
            "greenserve's arguments (worker): missing a required argument: 'worker'\n"
        )
