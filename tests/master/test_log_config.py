"""``--log-config`` with a real master: applied in the master and in each worker, USR1, HUP, errors."""

from __future__ import annotations

import json
import re
import shutil
import signal
from pathlib import Path

import pytest

from tests.conftest import run_cli, wait_until

from .conftest import APPS, http_get

pytestmark = pytest.mark.timeout(60)

#: A Python --log-config: every line says in which process its handler was built.
PY_CONFIG = '''\
import logging
import os


class _BuiltIn(logging.Filter):
    """Stamps each record with the pid of the process that built this filter (and its handler)."""

    def __init__(self):
        super().__init__()
        self.pid = os.getpid()

    def filter(self, record):
        record.built_in = self.pid
        return True


LOGGING = {{
    "version": 1,
    "filters": {{"built_in": {{"()": _BuiltIn}}}},
    "formatters": {{"line": {{"format": "%(built_in)s %(process)d %(levelname)s %(message)s"}}}},
    "handlers": {{
        "file": {{
            "class": "logging.FileHandler",
            "filename": {path!r},
            "filters": ["built_in"],
            "formatter": "line",
        }},
    }},
    "loggers": {{"greenserve.error": {{"handlers": ["file"], "level": "INFO", "propagate": False}}}},
}}
'''


def _lines(path: Path) -> list[tuple[int, int, str]]:
    """``(pid that built the handler, pid that wrote, "LEVEL message")`` per line."""
    out = []
    for line in path.read_text().splitlines():
        built, pid, rest = line.split(" ", 2)
        out.append((int(built), int(pid), rest))
    return out


def _address(path: Path) -> tuple[str, int]:
    match = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", path.read_text())
    assert match, path.read_text()
    return "127.0.0.1", int(match.group(1))


def _start(master, tmp_path: Path, *args: str):
    log_file = tmp_path / "error.log"
    config = tmp_path / "logging_conf.py"
    config.write_text(PY_CONFIG.format(path=str(log_file)))
    server = master("mapp:app", "--log-config", str(config), *args, ready=None)
    assert wait_until(lambda: log_file.exists() and "Ready: " in log_file.read_text(), 15), server.log
    return server, log_file, config


def test_applied_in_the_master_and_again_in_each_worker(master, tmp_path):
    server, log_file, _ = _start(master, tmp_path, "-w", "2")
    workers = server.wait_workers(lambda pids: len(pids) == 2)
    address = _address(log_file)
    for _ in range(6):
        http_get(address, "/log?marker=hello")
    assert wait_until(lambda: "app says hello" in log_file.read_text(), 5)
    lines = _lines(log_file)
    writers = {pid for _, pid, _ in lines}
    assert server.pid in writers and writers & set(workers), lines
    # Each process writes through a handler it built itself, not one inherited over fork.
    assert all(built == pid for built, pid, _ in lines), lines
    # greenserve added no handler of its own: nothing of the error log reached stderr.
    assert not [line for line in server.lines if "Listening at" in line or "Ready:" in line], server.log
    assert server.stop(signal.SIGTERM, timeout=10) == 0


def test_usr1_reopens_the_files_of_a_log_config(master, tmp_path):
    server, log_file, _ = _start(master, tmp_path, "-w", "1")
    (worker,) = server.wait_workers(lambda pids: len(pids) == 1)
    address = _address(log_file)
    rotated = tmp_path / "error.log.1"
    log_file.rename(rotated)
    server.send_signal(signal.SIGUSR1)
    assert wait_until(lambda: "SIGUSR1: reopening log files" in rotated.read_text(), 5)
    assert wait_until(log_file.exists, 5), "the master did not reopen the file of its --log-config"

    def worker_writes_to_the_new_file() -> bool:
        http_get(address, "/log?marker=rotated")
        return log_file.exists() and "app says rotated" in log_file.read_text()

    # (Until the worker has its USR1 from the master, its lines still go to the old file.)
    assert wait_until(worker_writes_to_the_new_file, 5, 0.2), (rotated.read_text(), log_file.read_text())
    http_get(address, "/log?marker=afterwards")
    server.send_signal(signal.SIGTTIN)
    assert wait_until(lambda: "SIGTTIN: 2 workers" in log_file.read_text(), 5)
    assert (worker, "WARNING app says afterwards") in [(pid, rest) for _, pid, rest in _lines(log_file)]
    assert "afterwards" not in rotated.read_text() and "SIGTTIN" not in rotated.read_text()


def test_hup_with_a_broken_log_config_keeps_the_current_one(master, tmp_path):
    server, log_file, config = _start(master, tmp_path, "-w", "1")
    (worker,) = server.wait_workers(lambda pids: len(pids) == 1)
    good = config.read_text()
    config.write_text(good.replace('"logging.FileHandler"', '"logging.NoSuchHandler"'))
    server.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "keeping the current configuration" in log_file.read_text(), 5), server.log
    (line,) = [rest for _, _, rest in _lines(log_file) if "keeping the current configuration" in rest]
    assert line.startswith(f"ERROR reload: --log-config {config}: Unable to configure handler 'file'"), line
    assert server.workers() == [worker]  # not replaced
    assert http_get(_address(log_file), "/")[0] == 200

    # Fixed, and reloaded: a new worker, logging through the file again.
    config.write_text(good)
    server.send_signal(signal.SIGHUP)
    (new,) = server.wait_workers(lambda pids: len(pids) == 1 and pids != [worker])
    assert wait_until(lambda: any(pid == new for _, pid, _ in _lines(log_file)), 10), log_file.read_text()


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("logging.json", '{"version": 1, "handlers": {"h": ', "JSONDecodeError"),
        ("logging.toml", "[handlers.h]\nclass = 'no.such.Handler'\n", "Unable to configure handler 'h'"),
        ("logging.py", "LOGGING = {'version': 1, 'root': {'level': 'LOUD'}}\n", "Unknown level: 'LOUD'"),
        ("logging.ini", "[loggers]\nkeys = root\n", "formatters"),
    ],
)
@pytest.mark.parametrize("command", [[], ["--check-config"]], ids=["serve", "check-config"])
def test_an_invalid_log_config_stops_at_startup_in_one_line(tmp_path, name, content, error, command):
    path = tmp_path / name
    path.write_text(content)
    result = run_cli(*command, "-b", "127.0.0.1:0", "--log-config", str(path), "mapp:app", cwd=APPS)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"greenserve: error: --log-config {path}: "), result.stderr
    assert error in result.stderr, result.stderr


def test_gunicorn_spelling_and_json_formatter(master, tmp_path):
    """``--log-config-json`` as in gunicorn, with greenserve's JSON formatter for the access log."""
    access = tmp_path / "access.jsonl"
    path = tmp_path / "logging.json"
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "formatters": {"json": {"()": "greenserve.logs.JsonFormatter"}},
                "handlers": {
                    "file": {"class": "logging.FileHandler", "filename": str(access), "formatter": "json"}
                },
                "loggers": {"greenserve.access": {"handlers": ["file"], "level": "INFO", "propagate": False}},
            }
        )
    )
    server = master("mapp:app", "-w", "1", "--access-log", "--log-config-json", str(path))
    assert server.get("/pid?x=1")[0] == 200
    assert wait_until(lambda: access.exists() and access.read_text().endswith("\n"), 5)
    (record,) = [json.loads(line) for line in access.read_text().splitlines()]
    assert record["path"] == "/pid" and record["query"] == "x=1" and record["status"] == 200
    assert record["worker"] == 1 and record["message"].startswith("127.0.0.1 - - [")
    # The error log, not in the file, kept greenserve's own text handler on stderr.
    assert any("] [INFO] Ready: " in line for line in server.lines)


def test_check_config_with_a_valid_log_config(tmp_path):
    path = tmp_path / "logging.toml"
    path.write_text('version = 1\n[root]\nlevel = "INFO"\n')
    result = run_cli("--check-config", "--log-config", str(path), "mapp:app", cwd=APPS)
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout


def test_a_worker_that_cannot_apply_the_log_config_does_not_start(master, tmp_path):
    """The master applied the file; by the time a new worker forks, its log file cannot be opened."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    path = tmp_path / "logging.json"
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "handlers": {
                    "file": {"class": "logging.FileHandler", "filename": str(log_dir / "access.log")}
                },
                "loggers": {"greenserve.access": {"handlers": ["file"]}},
            }
        )
    )
    server = master("mapp:app", "-w", "1", "--log-config", str(path))
    shutil.rmtree(log_dir)
    server.send_signal(signal.SIGTTIN)
    assert server.wait(timeout=15) == 3, server.log  # a boot failure: not a respawn loop
    line = server.wait_for(r"could not start")
    assert f"--log-config {path}: Unable to configure handler 'file'" in line, line
    assert "Traceback" not in server.log
