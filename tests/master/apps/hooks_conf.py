"""A configuration file setting every hook; each call appends one JSON line to $HOOK_LOG."""

import json
import os
import sys


def _record(name, **extra):
    modules = sorted(k for k in sys.modules if k.split(".")[0] in ("gevent", "asyncio", "greenlet"))
    line = {
        "hook": name,
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "modules": modules,
        "greenserve_modules": sorted(k for k in sys.modules if k.startswith("greenserve.")),
        "app_imported": "mapp" in sys.modules,
        **extra,
    }
    with open(os.environ["HOOK_LOG"], "a") as handle:
        handle.write(json.dumps(line) + "\n")


def on_starting(arbiter):
    _record("on_starting", arbiter_pid=arbiter.pid)


def when_ready(arbiter):
    _record("when_ready", arbiter_pid=arbiter.pid)


def pre_fork(arbiter, worker):
    _record("pre_fork", age=worker.age)


def post_fork(arbiter, worker):
    _record("post_fork", age=worker.age, worker_pid=worker.pid)


def post_worker_init(worker):
    _record("post_worker_init", worker_pid=worker.pid)


def worker_exit(worker):
    _record("worker_exit", worker_pid=worker.pid)


def on_exit(arbiter):
    _record("on_exit", arbiter_pid=arbiter.pid)


def pre_request(worker, environ):
    _record("pre_request", path=environ["PATH_INFO"], method=environ["REQUEST_METHOD"])


def post_request(worker, environ, status):
    _record("post_request", path=environ["PATH_INFO"], status=str(status))
