"""``--loop uvloop`` refuses threads started from its loop, on every supported Python.

A thread started from the uvloop loop thread would be a greenlet that never
runs (uvloop blocks inside libuv), so the request would hang; the worker
refuses it with a clear ``RuntimeError`` instead. The guard wraps the private
function ``threading.Thread.start`` calls, which Python 3.13 renamed
(``_start_new_thread`` -> ``_start_joinable_thread``). CI runs these tests on
3.11, 3.12 and 3.13.

Each test runs in a fresh interpreter: the guard patches the ``threading``
module of the whole process, as it does in a worker.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT, _clean_environ

pytest.importorskip("uvloop")

HOOKS = ("_start_new_thread", "_start_joinable_thread")
REFUSED = "a thread was started from the ASGI loop, which runs uvloop"


def run_python(code: str) -> dict:
    """Run ``code`` in a fresh interpreter patched by gevent; the JSON it prints."""
    prelude = "from gevent import monkey\nmonkey.patch_all()\nimport json, threading\n"
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=str(ROOT),
        env=_clean_environ(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_guard_wraps_the_hook_this_python_calls_and_refuses_threads_from_the_loop():
    outcome = run_python(
        f"""
        import asyncio
        from greenserve.asgi.loop_thread import LoopThread

        originals = {{name: getattr(threading, name) for name in {HOOKS!r} if hasattr(threading, name)}}
        loop_thread = LoopThread("uvloop")
        loop_thread.start()
        wrapped = sorted(
            name for name, original in originals.items()
            if getattr(getattr(threading, name), "__wrapped__", None) is original
        )

        def refusal(start):
            try:
                start()
            except RuntimeError as exc:
                return str(exc)
            return None

        async def from_the_loop():
            thread = threading.Thread(target=print)
            errors = {{"thread": refusal(thread.start)}}
            try:
                await asyncio.get_running_loop().run_in_executor(None, print)
            except RuntimeError as exc:
                errors["executor"] = str(exc)
            return errors

        refused = loop_thread.run_coroutine(from_the_loop(), timeout=5)
        ran = []
        outside = threading.Thread(target=ran.append, args=("greenlet",))
        outside.start()
        outside.join(5)
        loop_thread.stop()
        print(json.dumps({{"wrapped": wrapped, "refused": refused, "outside": ran}}))
        """
    )
    expected = "_start_joinable_thread" if sys.version_info >= (3, 13) else "_start_new_thread"
    assert outcome["wrapped"] == [expected]
    assert set(outcome["refused"]) == {"thread", "executor"}
    for how, message in outcome["refused"].items():
        assert message is not None, f"{how}: a thread started from the uvloop loop was not refused"
        assert REFUSED in message and "--loop asyncio" in message, (how, message)
    # Threads started by the worker's own greenlets are not affected.
    assert outcome["outside"] == ["greenlet"]


def test_python_without_either_hook_fails_loudly_instead_of_leaving_threads_unguarded():
    outcome = run_python(
        f"""
        from greenserve.asgi.loop_thread import LoopThread

        for name in {HOOKS!r}:
            vars(threading).pop(name, None)
        errors = []
        for _ in range(2):  # a failed attempt must not count as installed
            try:
                LoopThread("uvloop").start()
            except RuntimeError as exc:
                errors.append(str(exc))
        print(json.dumps({{"errors": errors}}))
        """
    )
    assert len(outcome["errors"]) == 2, outcome
    for message in outcome["errors"]:
        assert "--loop uvloop cannot refuse threads" in message
        assert "neither _start_joinable_thread nor _start_new_thread" in message
        assert "--loop asyncio" in message
