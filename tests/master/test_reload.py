"""``--reload``: code changes restart the workers; a broken edit keeps the master (and old workers) up."""

from __future__ import annotations

import os
import time

import pytest

from tests.conftest import wait_until

from .conftest import APPS

pytestmark = pytest.mark.timeout(60)

APP_TEMPLATE = """
import os

def app(environ, start_response):
    body = {body!r}
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""

TEMPLATE_READING_APP = """
import os

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "template.txt"), "rb") as _f:
    BODY = _f.read()

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))])
    return [BODY]
"""

#: No stale bytecode: a rewrite within the same second must not be served from __pycache__.
ENV = {"PYTHONDONTWRITEBYTECODE": "1"}


def _write(path, text: str) -> None:
    """Write ``text`` and move the mtime forward, so every change is seen as one."""
    previous = path.stat().st_mtime if path.exists() else time.time()
    path.write_text(text)
    stamp = max(time.time(), previous + 1)
    os.utime(path, (stamp, stamp))


def _serves(server, body: bytes, timeout: float) -> bool:
    def check() -> bool:
        try:
            return server.get("/", timeout=2) == (200, body)
        except OSError:
            return False

    return wait_until(check, timeout, 0.2)


def test_reload_with_chdir_picks_up_a_code_change(master, tmp_path):
    """The app lives in ``--chdir``; the master was started from another directory."""
    module = tmp_path / "reloadme.py"
    _write(module, APP_TEMPLATE.format(body=b"version 1"))
    server = master("reloadme:app", "--reload", "--chdir", str(tmp_path), cwd=APPS, env=ENV)
    assert server.get("/") == (200, b"version 1")
    _write(module, APP_TEMPLATE.format(body=b"version 2"))
    assert _serves(server, b"version 2", 8), server.log


def test_reload_survives_a_syntax_error_and_recovers(master, tmp_path):
    module = tmp_path / "reloadme.py"
    _write(module, APP_TEMPLATE.format(body=b"version 1"))
    server = master("reloadme:app", "-w", "2", "--reload", "--chdir", str(tmp_path), cwd=tmp_path, env=ENV)
    assert server.get("/") == (200, b"version 1")

    _write(module, "def app(environ, start_response:\n    return []\n")
    server.wait_for(r"SyntaxError", timeout=8)
    time.sleep(1.5)  # a respawn loop or an exit would show by now
    assert server.proc.poll() is None, server.log
    assert server.count(r"Booting worker") <= 4, server.log  # 2 first + 1 or 2 failed tries
    # The previous workers still serve the last good code.
    assert server.get("/") == (200, b"version 1")

    _write(module, APP_TEMPLATE.format(body=b"version 3"))
    assert _serves(server, b"version 3", 8), server.log
    assert server.proc.poll() is None


def test_reload_extra_file(master, tmp_path):
    (tmp_path / "templated.py").write_text(TEMPLATE_READING_APP)
    template = tmp_path / "template.txt"
    _write(template, "hello from template 1")
    server = master(
        "templated:app",
        "--reload",
        "--reload-extra-file",
        str(template),
        "--chdir",
        str(tmp_path),
        cwd=tmp_path,
        env=ENV,
    )
    assert server.get("/") == (200, b"hello from template 1")
    _write(template, "hello from template 2")
    assert _serves(server, b"hello from template 2", 8), server.log
