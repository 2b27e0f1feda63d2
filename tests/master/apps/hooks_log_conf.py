"""Hooks written for gunicorn: they log through ``server.log`` and ``worker.log``."""


def on_starting(server):
    server.log.info("hook on_starting %d", server.pid)


def pre_fork(server, worker):
    server.log.debug("hook pre_fork (not shown at info)")


def post_fork(server, worker):
    server.log.info("hook post_fork age %d", worker.age)


def post_worker_init(worker):
    worker.log.warning("hook post_worker_init")


def when_ready(server):
    server.log.log("info", "hook when_ready with %d worker(s)", server.num_workers)


def worker_exit(worker):
    worker.log.info("hook worker_exit")


def on_exit(server):
    try:
        raise RuntimeError("logged, not raised")
    except RuntimeError:
        server.log.exception("hook on_exit")
