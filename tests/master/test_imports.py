"""What the master imports: nothing of gevent/asyncio/the app, unless ``--preload`` asks for the app."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

from .conftest import APPS, hook_records

pytestmark = pytest.mark.timeout(60)

FORBIDDEN = ("gevent", "asyncio", "greenlet", "ssl", "mapp")


def test_master_modules_import_no_gevent_asyncio_ssl_or_app():
    code = (
        "import json, sys\n"
        "import greenserve.cli, greenserve.master.arbiter, greenserve.config, greenserve.sockets\n"
        "import greenserve.master.process, greenserve.master.systemd, greenserve.master.reloader\n"
        "import greenserve.workerlink, greenserve.config_sources, greenserve.logs\n"
        "import greenserve.master.control, greenserve.ctl\n"
        f"bad = sorted(k for k in sys.modules if k.split('.')[0] in {FORBIDDEN!r})\n"
        "print(json.dumps(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=str(APPS),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_live_master_has_no_gevent_asyncio_or_greenlet(master, tmp_path):
    hooks = tmp_path / "hooks.jsonl"
    server = master("mapp:app", "-w", "1", "-c", str(APPS / "hooks_conf.py"), env={"HOOK_LOG": str(hooks)})
    assert server.get("/")[0] == 200
    records = hook_records(hooks, {"on_starting", "when_ready", "post_worker_init"})
    in_master = [r for r in records if r["hook"] in ("on_starting", "when_ready")]
    assert {r["hook"] for r in in_master} == {"on_starting", "when_ready"}
    for record in in_master:
        assert record["pid"] == server.pid
        assert record["modules"] == [], record
        assert record["app_imported"] is False, record
    # ... while the worker has gevent (it patches before loading the app).
    worker = [r for r in records if r["hook"] == "post_worker_init"]
    assert worker and "gevent" in worker[0]["modules"] and worker[0]["app_imported"]


def test_preload_imports_the_app_once_in_the_master_patched_by_gevent(master, tmp_path):
    imports = tmp_path / "imports"
    server = master("preload_app:app", "--preload", "-w", "2", env={"IMPORT_LOG": str(imports)})
    workers = server.wait_workers(lambda pids: len(pids) == 2)
    server.wait_for(r"Preloaded preload_app:app in the master")
    assert imports.read_text().split() == [str(server.pid)]

    status, body = server.get("/introspect")
    assert status == 200
    info = json.loads(body)
    assert info["pid"] in workers
    assert info["socket"].startswith("gevent."), info
    assert info["ssl_socket"].startswith("gevent."), info
    assert info["thread_lock"].startswith("gevent."), info

    # Ten threads, each calling this server's 0.5 s endpoint: concurrent, so ~1x not 10x.
    status, body = server.get("/fanout", timeout=20)
    assert status == 200, body
    result = json.loads(body)
    assert result["statuses"] == [200] * 10, result
    assert result["elapsed"] < 2.0, result
    # Still imported only once (the workers were forked with it loaded).
    assert imports.read_text().split() == [str(server.pid)]


def test_preload_master_imports_the_app_and_gevent_but_no_serving_code(master, tmp_path):
    """--preload goes through the worker's entry by import string: the app, patched, and no more.

    The master imports the application (after gevent patched it), but not the
    worker's server, connection, protocol or ASGI code, nor asyncio for a WSGI app.
    """
    hooks = tmp_path / "hooks.jsonl"
    server = master(
        "mapp:app", "--preload", "-w", "1", "-c", str(APPS / "hooks_conf.py"), env={"HOOK_LOG": str(hooks)}
    )
    assert server.get("/")[0] == 200
    (record,) = [r for r in hook_records(hooks, {"when_ready"}) if r["hook"] == "when_ready"]
    assert record["pid"] == server.pid
    assert record["app_imported"] is True
    assert "gevent" in record["modules"]
    assert not any(name.startswith("asyncio") for name in record["modules"]), record
    worker_code = [
        name
        for name in record["greenserve_modules"]
        if name.startswith(("greenserve.worker.", "greenserve.protocol", "greenserve.asgi"))
    ]
    assert sorted(worker_code) == ["greenserve.worker.boot", "greenserve.worker.entry"], record
