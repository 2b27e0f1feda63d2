"""The master's loop: signals in, worker processes kept right.

Signal handlers only append to a queue and write a byte to a pipe that wakes
the loop; ``handle_<signal>`` methods do the work, one at a time, in the loop.
Every pass of the loop also reaps exited workers, reads their messages
(ready, retire), checks heartbeats and deadlines, and spawns or stops workers
until the set is right:

- as many *active* workers (booting or ready, current configuration, not
  retiring) as ``workers``;
- superseded workers (an older configuration after HUP, or retiring after
  ``--max-requests``) are stopped gracefully only once that many active
  workers are *ready*, so capacity never drops and no connection is refused.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import select
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from greenserve import __version__, hooks, logs, metrics, pidfile, proctitle, statsd
from greenserve.config import Config
from greenserve.errors import (
    EXIT_APP_LOAD_ERROR,
    EXIT_BOOT_ERROR,
    EXIT_ERROR,
    EXIT_OK,
    AppLoadError,
    BootError,
    ConfigError,
    GreenserveError,
)
from greenserve.master import systemd
from greenserve.master.control import ControlServer, open_control_socket
from greenserve.master.process import (
    BOOTING,
    PRELOAD_ENTRY,
    READY,
    STOPPING,
    WorkerRecord,
    import_entry,
    run_child,
)
from greenserve.privileges import resolve_ids
from greenserve.sockets import Listener, adopt_fd, close_listeners, create_listeners, stop_queueing
from greenserve.workerlink import MSG_ERROR, MSG_READY, MSG_RETIRE, LoadBoard, WorkerLink, parse_messages

log = logging.getLogger("greenserve.error")

# Captured at import, before --preload may let gevent patch the os, select,
# time and signal modules: the master's own loop must stay plainly blocking.
_fork = os.fork
_waitpid = os.waitpid
_select = select.select
_signal = signal.signal

#: Environment variable naming the listening descriptors a re-executed master inherits.
INHERITED_FDS_ENV = "_GREENSERVE_INHERITED_FDS"
#: After SIGABRT for a missed heartbeat, how long a worker gets to dump its stacks.
ABORT_GRACE = 5.0
#: After a quick stop (INT/QUIT), how long workers get before SIGKILL.
QUICK_STOP_GRACE = 3.0
#: A worker dying this soon after its spawn counts toward a crash loop (respawns back off).
CRASH_WINDOW = 5.0
MAX_BACKOFF = 30.0
_LOOP_INTERVAL = 0.5
#: --statsd-host: the workers gauge is sent when it changes, and again this often (seconds),
#: so a statsd daemon that restarted has it.
STATSD_GAUGE_EVERY = 10.0

#: What SIGHUP runs: the configuration read again, and where each setting came from.
ReloadConfig = Callable[[], tuple[Config, dict[str, str]]]


class StopMaster(Exception):
    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Arbiter:
    """Supervises the worker processes of one greenserve server."""

    SIGNALS = tuple(
        getattr(signal, name)
        for name in (
            "SIGHUP",
            "SIGQUIT",
            "SIGINT",
            "SIGTERM",
            "SIGTTIN",
            "SIGTTOU",
            "SIGUSR1",
            "SIGUSR2",
            "SIGCHLD",
            "SIGWINCH",
        )
        if hasattr(signal, name)
    )

    def __init__(
        self,
        config: Config,
        reload_config: ReloadConfig | None = None,
        sources: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self._reload_config = reload_config
        #: ``{setting: where its value came from}`` for ``config`` (greenserve ctl config).
        self.sources = dict(sources or {})
        self.pid = os.getpid()
        self.num_workers = config.workers
        self.listeners: list[Listener] = []
        self.workers: dict[int, WorkerRecord] = {}
        self.generation = 1
        self.age = 0
        self.signal_queue: deque[int] = deque()
        self.stopping = False
        self.stop_deadline = 0.0
        self.exit_code = EXIT_OK
        self.reexec_pid = 0
        self.preloaded_app: Any = None
        #: How many connections each worker holds, shared with them (see LoadBoard).
        self.board = LoadBoard()
        #: --metrics-bind: the endpoint, what exited workers had counted, why workers were replaced.
        self.status: Any = None
        self.retired = metrics.Totals()
        self.restarts: dict[str, int] = {}
        self.heartbeat_kills = 0
        #: --statsd-host: the master's client (gunicorn.workers, the master's log counters).
        self.statsd: statsd.Statsd | None = None
        self._statsd_workers = -1
        self._statsd_due = 0.0
        #: --control-socket: greenserve ctl's way in (None: off).
        self.control: ControlServer | None = None
        #: Why the last reload kept the current configuration ("" if it did not fail).
        self.reload_error = ""
        self.uid: int | None = None
        self.gid: int | None = None
        self.proc_name = config.proc_name or config.app
        #: gunicorn's ``server.log`` for hooks: info(), warning(), exception()... to the error log.
        self.log = logs.SERVER_LOG
        self.ready_announced = False
        self._previous_config: Config | None = None
        self._previous_sources: dict[str, str] = {}
        self._crashes = 0
        self._spawn_after = 0.0
        self._wake_r = self._wake_w = -1
        self._reloader: Any = None
        self._last_reload_check = 0.0
        self._unlink_sockets = True
        self._parent_master = 0

    # -- startup -------------------------------------------------------------------

    def run(self) -> int:
        """Start, supervise until stopped; returns the exit code."""
        try:
            self.start()
            self.loop()
        except StopMaster as stop:
            if stop.reason:
                log.error("%s", stop.reason)
            self.exit_code = stop.code
            self.stop_workers(graceful=False)
        except GreenserveError as exc:  # bind, user/group, pidfile: before any worker
            log.error("%s", exc)
            self.exit_code = exc.exit_code
            self.stop_workers(graceful=False)
        except KeyboardInterrupt:  # pragma: no cover - SIGINT is handled; belt and braces
            self.stop_workers(graceful=False)
        finally:
            self.cleanup()
        return self.exit_code

    def start(self) -> None:
        config = self.config
        log.info("Starting greenserve %s (master pid %d)", __version__, self.pid)
        self._open_statsd()
        hooks.install(config)
        try:
            hooks.notify(hooks.Starting(self))
        except Exception as exc:
            raise StopMaster(EXIT_BOOT_ERROR, f"on_starting hook failed: {exc!r}") from exc
        self.uid, self.gid = resolve_ids(config.user, config.group) if os.name == "posix" else (None, None)
        self._setup_signals()
        self.listeners = self._open_listeners()
        scheme = "https" if config.tls else "http"
        for listener in self.listeners:
            log.info("Listening at: %s (%d)", listener.url("http" if listener.is_unix else scheme), self.pid)
        if config.metrics_bind:
            from greenserve.master.httpstatus import StatusEndpoint

            self.status = StatusEndpoint(config.metrics_bind, self.status_page)
            log.info("Metrics at: %s/metrics (%d)", self.status.url, self.pid)
        self.control = open_control_socket(self, config.control_socket, take_over=bool(self._parent_master))
        self._write_pidfile()
        if config.preload and config.reload:
            log.warning("--preload is ignored with --reload: code changes need fresh imports")
        elif config.preload:
            self._preload()
        if config.reload:
            from greenserve.master.reloader import Reloader

            roots = [os.path.abspath(config.chdir or os.getcwd()), *config.pythonpath]
            self._reloader = Reloader(roots, config.reload_extra_files)
            log.info("Reloading on changes below %s", ", ".join(self._reloader.roots))
        proctitle.set_title(proctitle.master_title(self.proc_name))
        log.info("Using %d worker%s", self.num_workers, "" if self.num_workers == 1 else "s")

    def _open_statsd(self) -> None:
        self.statsd = statsd.Statsd.from_config(self.config)
        statsd.install(self.statsd)
        self._statsd_workers = -1
        if self.statsd is not None:
            log.info("Sending statsd metrics to %s", self.config.statsd_host)

    def _report_workers(self, count: int) -> None:
        """gunicorn's ``gunicorn.workers`` gauge: the workers serving (or booting to serve) now."""
        now = time.monotonic()
        if count != self._statsd_workers or now >= self._statsd_due:
            self._statsd_workers = count
            self._statsd_due = now + STATSD_GAUGE_EVERY
            assert self.statsd is not None
            self.statsd.gauge("gunicorn.workers", count)

    def _open_listeners(self) -> list[Listener]:
        config = self.config
        inherited = os.environ.pop(INHERITED_FDS_ENV, "")
        fds = [int(fd) for fd in inherited.split(",") if fd.strip().isdigit()]
        if fds:
            # While the master that started us (USR2) lives, the socket files are
            # its too: if this upgrade fails or is rolled back, it keeps serving.
            self._parent_master = os.getppid()
            log.info("Inherited %d listening socket(s) from the previous master", len(fds))
            return [adopt_fd(fd, config.backlog, owned=True) for fd in fds]
        activated = systemd.listen_fds()
        if activated:
            log.info("Using %d socket(s) from systemd socket activation", len(activated))
            return [adopt_fd(fd, config.backlog, owned=False) for fd in activated]
        return create_listeners(
            config.bind,
            backlog=config.backlog,
            reuse_port=config.reuse_port,
            umask=config.umask,
            listen=not config.reuse_port,
        )

    def _preload(self) -> None:
        """Import the application here, after gevent has patched this process."""
        try:
            self.preloaded_app = import_entry(PRELOAD_ENTRY)(self.config)
        except AppLoadError as exc:
            raise StopMaster(EXIT_APP_LOAD_ERROR, f"cannot load the application: {exc}") from None
        log.info("Preloaded %s in the master (gevent patched first)", self.config.app)

    def _setup_signals(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
            os.set_inheritable(fd, False)
        for signum in self.SIGNALS:
            _signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        """Signal handler: enqueue and wake the loop, nothing else."""
        self.signal_queue.append(signum)
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b".")

    def _write_pidfile(self) -> None:
        if self.config.pidfile:
            pidfile.write(self.config.pidfile)

    # -- the loop --------------------------------------------------------------------

    def loop(self) -> None:
        while True:
            self._wait()
            while self.signal_queue:
                signum = self.signal_queue.popleft()
                name = signal.Signals(signum).name[3:].lower()
                getattr(self, f"handle_{name}")()
            self.reap()
            self.read_messages()
            if self.stopping:
                if not self.workers:
                    return
                self._enforce_stop_deadline()
                continue
            self.check_heartbeats()
            self.check_reload()
            self.manage_workers()

    def _wait(self) -> None:
        fds = [self._wake_r] + [w.link.read_fd for w in self.workers.values() if w.link.read_fd >= 0]
        status = self.status
        writing: list[int] = []
        if status is not None:
            fds += status.read_fds()
            writing = status.write_fds()
        control = self.control
        if control is not None:
            control_reading, control_writing = control.prepare()
            fds += control_reading
            writing += control_writing
        try:
            readable, writable, _ = _select(fds, writing, [], _LOOP_INTERVAL)
        except InterruptedError:
            return
        except OSError as exc:  # pragma: no cover - a closed pipe between loops
            if exc.errno != errno.EBADF:
                raise
            return
        if self._wake_r in readable:
            with contextlib.suppress(OSError):
                while os.read(self._wake_r, 4096):
                    pass
        if status is not None:
            status.handle(readable, writable)
        if control is not None:
            control.handle(readable, writable)

    def status_page(self, path: str) -> tuple[str, str, bytes]:
        """--metrics-bind: Prometheus metrics, liveness and readiness (for load balancers, Kubernetes)."""
        if path == "/metrics":
            snapshots = {
                str(w.age): w.metrics.snapshot() for w in self.workers.values() if w.metrics is not None
            }
            server = {
                "workers": self.num_workers,
                "restarts": self.restarts,
                "heartbeat_kills": self.heartbeat_kills,
            }
            text = metrics.render(snapshots, self.retired, server)
            return "200 OK", metrics.CONTENT_TYPE, text.encode("utf-8")
        if path == "/healthz":
            return "200 OK", "text/plain", b"ok\n"
        if path == "/readyz":
            ready = sum(1 for w in self.workers.values() if w.state == READY)
            if ready and self.ready_announced and not self.stopping:
                return "200 OK", "text/plain", f"ready: {ready} workers\n".encode()
            return "503 Service Unavailable", "text/plain", b"not ready\n"
        return "404 Not Found", "text/plain", b"try /metrics, /healthz or /readyz\n"

    # -- signals -----------------------------------------------------------------------

    def handle_chld(self) -> None:
        pass  # reaping happens on every pass of the loop

    def handle_hup(self) -> None:
        log.info("SIGHUP: reloading the configuration and replacing the workers")
        self.reload()

    def handle_term(self) -> None:
        log.info("SIGTERM: graceful shutdown (up to %g s)", self.config.graceful_timeout)
        self.stop_workers(graceful=True)

    def handle_int(self) -> None:
        log.info("SIGINT: quick shutdown")
        self.stop_workers(graceful=False)

    def handle_quit(self) -> None:
        log.info("SIGQUIT: quick shutdown")
        self.stop_workers(graceful=False)

    def handle_ttin(self) -> None:
        self.num_workers += 1
        log.info("SIGTTIN: %d workers", self.num_workers)

    def handle_ttou(self) -> None:
        if self.num_workers <= 1:
            log.info("SIGTTOU: already at 1 worker")
            return
        self.num_workers -= 1
        log.info("SIGTTOU: %d workers", self.num_workers)

    def handle_usr1(self) -> None:
        log.info("SIGUSR1: reopening log files")
        logs.reopen_files()
        for worker in self.workers.values():
            if worker.state == READY:  # a booting worker opens its files after this anyway
                self._kill(worker, signal.SIGUSR1)

    def handle_usr2(self) -> None:
        self.reexec()

    def handle_winch(self) -> None:
        pass  # ignored: terminals send it on resize

    # -- workers ---------------------------------------------------------------------

    def spawn_worker(self) -> WorkerRecord:
        config = self.config
        link = WorkerLink(config.worker_tmp_dir or None)
        if self.uid is not None or self.gid is not None:
            os.fchown(
                link.heartbeat_fd, -1 if self.uid is None else self.uid, -1 if self.gid is None else self.gid
            )
        self.age += 1
        jitter = random.randint(0, config.max_requests_jitter) if config.max_requests else 0  # noqa: S311
        worker = WorkerRecord(
            age=self.age,
            link=link,
            generation=self.generation,
            max_requests=config.max_requests + jitter if config.max_requests else 0,
            board_slot=self.board.allocate(),
            metrics=metrics.WorkerMetrics() if self.status is not None else None,
        )
        try:
            hooks.notify(hooks.PreFork(self, worker))
        except Exception:
            log.exception("pre_fork hook failed")
        # Signals wait until the child has replaced the master's handlers:
        # one arriving in between would run the master's code in the child.
        signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)
        try:
            pid = _fork()
            if pid == 0:  # pragma: no cover - runs in the child, which never returns
                run_child(self, worker)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, self.SIGNALS)
        worker.pid = pid
        worker.spawned_at = time.monotonic()
        link.after_fork_in_master()
        self.workers[pid] = worker
        log.info("Booting worker %d (age %d)", pid, worker.age)
        return worker

    def close_in_child(self, worker: WorkerRecord) -> None:
        """In a new child: close what belongs to the master and the other workers."""
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        for other in self.workers.values():
            if other is not worker:
                other.link.close()
                if other.metrics is not None:
                    other.metrics.close()
        if self.status is not None:
            self.status.listener.sock.close()  # the endpoint is the master's
        if self.control is not None:
            self.control.close_in_child()
        self.workers = {}

    def _kill(self, worker: WorkerRecord, signum: int) -> None:
        try:
            os.kill(worker.pid, signum)
        except ProcessLookupError:
            pass

    def stop_worker(self, worker: WorkerRecord, graceful: bool = True) -> None:
        if worker.state == STOPPING and graceful:
            return
        worker.state = STOPPING
        worker.expected_exit = True
        worker.stop_sent_at = time.monotonic()
        self._kill(worker, signal.SIGTERM if graceful else signal.SIGQUIT)

    def stop_workers(self, graceful: bool) -> None:
        if not self.stopping:
            systemd.notify("STOPPING=1")
            if not self._new_master_alive() and not (
                self._parent_master and pidfile.is_alive(self._parent_master)
            ):
                # The whole server stops (no other master shares the sockets):
                # let the workers empty the queues without new arrivals to reset.
                for listener in self.listeners:
                    stop_queueing(listener)
            # The workers close their copies of the listening sockets as they
            # drain; with the master's closed too, new clients are refused at
            # once instead of waiting in a backlog nobody accepts from. (A
            # master started by USR2 holds its own copies.)
            close_listeners(self.listeners, unlink=False)
        self.stopping = True
        timeout = self.config.graceful_timeout if graceful else QUICK_STOP_GRACE
        deadline = time.monotonic() + timeout + (2.0 if graceful else 0.0)
        self.stop_deadline = min(self.stop_deadline, deadline) if self.stop_deadline else deadline
        for worker in list(self.workers.values()):
            self.stop_worker(worker, graceful)
        # A quick stop after a graceful one escalates the signal.
        if not graceful:
            for worker in list(self.workers.values()):
                self._kill(worker, signal.SIGQUIT)

    def _enforce_stop_deadline(self) -> None:
        if self.stop_deadline and time.monotonic() > self.stop_deadline:
            for worker in list(self.workers.values()):
                log.warning("worker %d did not stop in time: SIGKILL", worker.pid)
                self._kill(worker, signal.SIGKILL)
            self.stop_deadline = time.monotonic() + 5.0

    def reap(self) -> None:
        while True:
            try:
                pid, status = _waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            if pid == self.reexec_pid:
                self._reexec_exited(code)
                continue
            worker = self.workers.pop(pid, None)
            if worker is None:
                continue
            self._read_link(worker)  # its last words, e.g. why it could not start
            worker.link.close()
            self.board.release(worker.board_slot)
            if worker.metrics is not None:
                self.retired.add(worker.metrics.snapshot())
                worker.metrics.close()
            self._worker_exited(worker, code)

    def _worker_exited(self, worker: WorkerRecord, code: int) -> None:
        if not self.stopping:
            cause = worker.stop_cause or ("timeout" if worker.aborted_at else "crash" if code else "exit")
            self.restarts[cause] = self.restarts.get(cause, 0) + 1
        self._report_exit(worker, code)

    def _report_exit(self, worker: WorkerRecord, code: int) -> None:
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        if worker.expected_exit and code in (0, -signal.SIGKILL, -signal.SIGTERM, -signal.SIGQUIT):
            log.info("Worker %d stopped (%s)", worker.pid, how)
            return
        if worker.aborted_at:
            log.error("Worker %d was replaced after a timeout (%s)", worker.pid, how)
            return
        if code in (EXIT_APP_LOAD_ERROR, EXIT_BOOT_ERROR) and not self.stopping:
            self._boot_failure(worker, code)
            return
        if self.stopping:
            log.info("Worker %d exited (%s)", worker.pid, how)
            return
        if code == 0:  # stopped by a signal sent to it directly: replaced, not a crash
            log.info("Worker %d exited on its own (%s); starting a new one", worker.pid, how)
            return
        log.error("Worker %d died unexpectedly (%s); starting a new one", worker.pid, how)
        if time.monotonic() - worker.spawned_at < CRASH_WINDOW:
            self._crashes += 1
            delay = min(MAX_BACKOFF, 0.5 * 2 ** (self._crashes - 1))
            self._spawn_after = time.monotonic() + delay
            log.warning("Workers keep dying right after starting: next spawn in %.1f s", delay)
        else:
            self._crashes = 0

    def _boot_failure(self, worker: WorkerRecord, code: int) -> None:
        """A worker could not load the app or start: never a respawn loop."""
        what = "load the application" if code == EXIT_APP_LOAD_ERROR else "start"
        if worker.extra.get("error"):
            what += f" ({worker.extra['error']})"
        serving = [w for w in self.workers.values() if w.state == READY and w.generation < worker.generation]
        if serving:
            # A reload failed: keep the workers of the previous configuration.
            keep = max(w.generation for w in serving)
            log.error(
                "Worker %d could not %s after a reload; keeping the %d previous worker(s)",
                worker.pid,
                what,
                len(serving),
            )
            for other in list(self.workers.values()):
                if other.generation > keep:
                    self.stop_worker(other)
            self.generation = keep
            if self._previous_config is not None:
                self.config = self._previous_config
                self.sources = self._previous_sources
            return
        if self.config.reload:
            log.error("Worker %d could not %s; waiting for a file change to retry", worker.pid, what)
            self._spawn_after = float("inf")
            return
        raise StopMaster(code, f"Worker {worker.pid} could not {what}: shutting down (exit code {code})")

    def read_messages(self) -> None:
        for worker in list(self.workers.values()):
            self._read_link(worker)

    def _read_link(self, worker: WorkerRecord) -> None:
        if worker.link.read_fd < 0:
            return
        data = worker.link.receive()
        for kind, text in parse_messages(data) if data else ():
            if kind == MSG_READY and worker.state == BOOTING:
                worker.state = READY
                log.debug("Worker %d is ready", worker.pid)
            elif kind == MSG_RETIRE and not worker.retiring and worker.state != STOPPING:
                worker.retiring = True
                log.info("Worker %d reached --max-requests: starting its replacement", worker.pid)
            elif kind == MSG_ERROR:
                worker.extra["error"] = text

    def check_heartbeats(self) -> None:
        timeout = self.config.timeout
        now_wall = time.time()
        now = time.monotonic()
        for worker in list(self.workers.values()):
            if worker.aborted_at:
                if now - worker.aborted_at > ABORT_GRACE:
                    log.error("Worker %d is still alive after SIGABRT: SIGKILL", worker.pid)
                    self._kill(worker, signal.SIGKILL)
                    worker.aborted_at = now + 3600  # once
                continue
            if worker.state != READY:
                continue  # booting (importing the app: no event loop yet) or stopping
            if timeout and now_wall - worker.link.last_beat() > timeout:
                log.error(
                    "Worker %d timed out: its event loop has been blocked for more than %g s "
                    "(--timeout); sending SIGABRT",
                    worker.pid,
                    timeout,
                )
                worker.aborted_at = now
                self.heartbeat_kills += 1
                self._kill(worker, signal.SIGABRT)
        for worker in list(self.workers.values()):
            overdue = now - worker.stop_sent_at > self.config.graceful_timeout + 5.0
            if worker.state == STOPPING and worker.stop_sent_at and overdue:
                log.warning("Worker %d did not stop in time: SIGKILL", worker.pid)
                self._kill(worker, signal.SIGKILL)
                worker.stop_sent_at = now + 3600

    def check_reload(self) -> None:
        if self._reloader is None:
            return
        now = time.monotonic()
        if now - self._last_reload_check < 1.0:
            return
        self._last_reload_check = now
        changed = self._reloader.changed()
        if changed:
            shown = ", ".join(os.path.relpath(path) for path in changed[:3])
            more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
            log.info("Changed: %s%s; restarting the workers", shown, more)
            self._spawn_after = 0.0
            self._crashes = 0
            self.reload()

    def manage_workers(self) -> None:
        workers = list(self.workers.values())
        active = [
            w for w in workers if w.state != STOPPING and not w.retiring and w.generation == self.generation
        ]
        now = time.monotonic()
        while len(active) < self.num_workers and now >= self._spawn_after:
            active.append(self.spawn_worker())
        if len(active) > self.num_workers:
            for worker in sorted(active, key=lambda w: w.age)[: len(active) - self.num_workers]:
                log.info("Stopping worker %d (%d workers wanted)", worker.pid, self.num_workers)
                worker.stop_cause = "scale_down"
                self.stop_worker(worker)
                active.remove(worker)
        if self.statsd is not None:
            self._report_workers(len(active))
        ready = [w for w in active if w.state == READY]
        if len(ready) >= self.num_workers:
            for worker in workers:
                if worker.state != STOPPING and (worker.retiring or worker.generation < self.generation):
                    log.info("Stopping worker %d: replaced", worker.pid)
                    worker.stop_cause = "max_requests" if worker.retiring else "reload"
                    self.stop_worker(worker)
            if not self.ready_announced:
                self.ready_announced = True
                log.info("Ready: %d worker(s) serving %s", len(ready), self.config.app)
                systemd.notify(f"READY=1\nSTATUS=serving with {len(ready)} workers\nMAINPID={self.pid}")
                try:
                    hooks.notify(hooks.WhenReady(self))
                except Exception:
                    log.exception("when_ready hook failed")

    # -- reload and re-exec ------------------------------------------------------------

    def reload(self) -> None:
        """New configuration, new workers; the old ones stop once the new are ready."""
        self.reload_error = ""
        if self._reload_config is not None:
            try:
                config, sources = self._reload_config()
                logs.setup(config)  # restores the current logging when it fails
            except ConfigError as exc:
                log.error("reload: %s; keeping the current configuration", exc)
                self.reload_error = str(exc)
                return
            self._previous_config = self.config
            self._previous_sources = self.sources
            if config.bind != self.config.bind:
                log.warning("reload: bind changed; the new addresses need a restart of the master")
                config = config.replace(bind=self.config.bind)
                sources["bind"] = self.sources.get("bind", "default")
            if config.control_socket != self.config.control_socket:
                log.warning("reload: control_socket changed; the new socket needs a restart of the master")
                config = config.replace(control_socket=self.config.control_socket)
                sources["control_socket"] = self.sources.get("control_socket", "default")
            self.config = config
            self.sources = sources
            hooks.install(config)
            previous = self._previous_config
            if (config.statsd_host, config.statsd_prefix, config.dogstatsd_tags) != (
                previous.statsd_host,
                previous.statsd_prefix,
                previous.dogstatsd_tags,
            ):
                self._open_statsd()
            if config.workers != self._previous_config.workers:
                self.num_workers = config.workers
        self.generation += 1

    def reexec(self) -> None:
        """USR2: start a new master on the same sockets; this one keeps serving."""
        if self.reexec_pid:
            log.warning("SIGUSR2: a new master (pid %d) is already running", self.reexec_pid)
            return
        fds = []
        for listener in self.listeners:
            fd = listener.sock.fileno()
            os.set_inheritable(fd, True)
            fds.append(str(fd))
        path = self.config.pidfile
        if path:
            with contextlib.suppress(OSError):
                os.replace(path, path + ".oldbin")
        env = {**os.environ, INHERITED_FDS_ENV: ",".join(fds)}
        argv = [sys.executable, "-m", "greenserve", *sys.argv[1:]]
        pid = _fork()
        if pid == 0:  # pragma: no cover - becomes the new master
            try:
                for signum in self.SIGNALS:
                    signal.signal(signum, signal.SIG_DFL)
                os.execve(sys.executable, argv, env)  # noqa: S606 - our own interpreter
            finally:
                os._exit(EXIT_ERROR)
        self.reexec_pid = pid
        self._unlink_sockets = False
        log.info("SIGUSR2: started a new master (pid %d) on the same sockets", pid)

    def _reexec_exited(self, code: int) -> None:
        log.error(
            "The new master (pid %d) exited (code %d); this master keeps serving", self.reexec_pid, code
        )
        self.reexec_pid = 0
        self._unlink_sockets = True
        if self.control is not None:
            self.control.reclaim()
        path = self.config.pidfile
        if path:
            with contextlib.suppress(OSError):
                os.replace(path + ".oldbin", path)

    # -- shutdown ----------------------------------------------------------------------

    def cleanup(self) -> None:
        if self.status is not None:
            self.status.close()
        if self.control is not None:
            self.control.close()
        for worker in list(self.workers.values()):
            self._kill(worker, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            while self.workers:
                pid, _ = _waitpid(-1, 0)
                if pid in self.workers:
                    self.workers.pop(pid).link.close()
        unlink = (
            self._unlink_sockets
            and not self._new_master_alive()
            and not (self._parent_master and pidfile.is_alive(self._parent_master))
        )
        close_listeners(self.listeners, unlink=unlink)
        path = self.config.pidfile
        if path:
            pidfile.remove(path)
            pidfile.remove(path + ".oldbin")
        try:
            hooks.notify(hooks.Exit(self))
        except Exception:
            log.exception("on_exit hook failed")
        log.info("Shutting down: master %d exits (code %d)", self.pid, self.exit_code)
        statsd.install(None)

    def _new_master_alive(self) -> bool:
        return bool(self.reexec_pid) and pidfile.is_alive(self.reexec_pid)


def run(
    config: Config, reload_config: ReloadConfig | None = None, sources: dict[str, str] | None = None
) -> int:
    """Entry point from the CLI: ``sources`` says where each setting of ``config`` came from."""
    if not hasattr(os, "fork"):  # pragma: no cover - cli.py routes Windows to single.py
        raise BootError("the pre-fork master needs os.fork")
    return Arbiter(config, reload_config, sources).run()
