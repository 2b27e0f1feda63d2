"""The master's control socket: what ``greenserve ctl`` talks to.

A Unix socket that only the master's user can use: the file has mode 0600
and lives in a directory no other user can write to (by default a 0700
directory of the user's own, named after nothing but the user, with one
socket per master named after its pid). Whoever can connect can already
signal the master, so the socket gives no new power to anyone; it gives
answers a signal cannot (which workers run, how busy they are, which
settings came from where) and replies saying what a command did.

The protocol is one JSON object per direction, one line each::

    -> {"command": "add", "count": 2}
    <- {"ok": true, "result": {"before": 2, "wanted": 4}}
    <- {"ok": false, "error": "unknown command 'ad' (known: status, workers, ...)"}

then the master closes the connection. A request may take at most 4 KiB
and the whole exchange 5 seconds; at most 16 clients are served at once.

Like the metrics endpoint (httpstatus.py), the socket is driven by the
master's own ``select()`` loop, with no thread: the master forks, and a
thread would leave its locks held in every child. Commands that act are
queued exactly as their signals are (``add`` is SIGTTIN, ``remove`` SIGTTOU,
``reload`` SIGHUP, ``reopen`` SIGUSR1), handled by the loop's ``handle_*``
methods, and answered on the loop's next pass, once done.

Standard library only: the master imports this module.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import signal
import socket
import stat
import struct
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from greenserve import __version__
from greenserve.config import HOOKS, SETTINGS
from greenserve.errors import BootError
from greenserve.master.process import BOOTING, READY, STOPPING

if TYPE_CHECKING:
    from greenserve.master.arbiter import Arbiter

log = logging.getLogger("greenserve.error")

# Captured at import, before --preload may let gevent patch the socket module:
# the master's sockets must stay plainly non-blocking (see arbiter.py).
_Socket = socket.socket

#: The --control-socket value that means "the default location".
AUTO = "auto"
#: A request line may be this long (commands are a few dozen bytes).
MAX_REQUEST = 4096
#: Time for a whole exchange, from accept to the last byte of the reply.
TIMEOUT = 5.0
MAX_CLIENTS = 16
#: ``add N`` and ``remove N`` take at most this many at once.
MAX_COUNT = 1000
_BACKLOG = 16

#: Every command and what it does, for errors and for ``greenserve ctl --help``.
COMMANDS = {
    "status": "the master: pid, uptime, application, workers wanted and running, generation",
    "workers": "each worker: pid, age, generation, state, uptime, requests, connections, memory",
    "add": "start N more workers (default 1), as SIGTTIN does",
    "remove": "stop N workers, the oldest first (default 1; never fewer than 1 worker), as SIGTTOU does",
    "reload": "reload the configuration and replace every worker, as SIGHUP does",
    "reopen": "reopen the log files in the master and every worker, as SIGUSR1 does",
    "config": "the effective settings, and where each one came from",
}


class ControlError(Exception):
    """A request the master refuses: the message goes back to the client."""


# -- where sockets live ---------------------------------------------------------------------


def runtime_directories(uid: int | None = None) -> list[str]:
    """Where default control sockets of ``uid``'s masters live, most preferred first.

    ``$XDG_RUNTIME_DIR/greenserve`` (only for this process's own user: the
    variable describes its session), ``/run/user/UID/greenserve`` when
    ``/run/user/UID`` exists, and ``greenserve-UID`` in the temporary
    directory. A master uses the first whose parent exists; ``greenserve
    ctl`` looks in them in order and the first holding a running master's
    socket decides, so a master started by a service manager (no session,
    no ``XDG_RUNTIME_DIR``) is still found from a login shell.
    """
    own = os.geteuid()
    uid = own if uid is None else uid
    found: list[str] = []
    xdg = os.environ.get("XDG_RUNTIME_DIR", "")
    if uid == own and os.path.isabs(xdg):
        found.append(os.path.join(xdg, "greenserve"))
    if os.path.isdir(f"/run/user/{uid}"):
        found.append(f"/run/user/{uid}/greenserve")
    found.append(os.path.join(tempfile.gettempdir(), f"greenserve-{uid}"))
    return list(dict.fromkeys(os.path.normpath(path) for path in found))


def socket_name(pid: int) -> str:
    """The file name of a default control socket: the master's pid."""
    return f"{pid}.sock"


def pid_of(name: str) -> int | None:
    """The master pid a default socket file name stands for (None for other files)."""
    stem, dot, suffix = name.partition(".")
    return int(stem) if dot and suffix == "sock" and stem.isdigit() else None


def private_directory(path: str) -> None:
    """Create ``path`` (mode 0700) or check it: a directory of this user's, closed to everyone else.

    Not followed if it is a symbolic link: whoever could plant one could
    point it at a directory they control.
    """
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise BootError(f"control socket directory {path} is not a directory (a symbolic link?)")
    if info.st_uid != os.geteuid():
        raise BootError(f"control socket directory {path} belongs to uid {info.st_uid}, not to this user")
    if info.st_mode & 0o077:
        raise BootError(
            f"control socket directory {path} has mode {stat.S_IMODE(info.st_mode):04o}: other users "
            "could reach or replace the socket; it must be 0700 (chmod 700, or remove it)"
        )


def check_directory(path: str) -> None:
    """An explicit ``--control-socket PATH``'s directory: it exists, and no other user may write to it.

    A group or world writable directory (``/tmp``) would let another user
    remove the socket and put their own in its place.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        info = os.stat(directory)
    except OSError as exc:
        raise BootError(f"--control-socket {path}: directory {directory}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise BootError(f"--control-socket {path}: {directory} is not a directory")
    if info.st_uid not in (os.geteuid(), 0):
        raise BootError(
            f"--control-socket {path}: directory {directory} belongs to uid {info.st_uid}: "
            "use a directory of this user's"
        )
    if info.st_mode & 0o022:
        raise BootError(
            f"--control-socket {path}: directory {directory} (mode {stat.S_IMODE(info.st_mode):04o}) can "
            "be written by other users, who could replace the socket: use a directory only this user can "
            "write to, such as /run/NAME (systemd: RuntimeDirectory=NAME)"
        )


def remove_stale(directory: str) -> None:
    """Remove default sockets in ``directory`` whose master is gone (killed, it could not remove its own)."""
    with contextlib.suppress(OSError):
        for name in os.listdir(directory):
            pid = pid_of(name)
            if pid is not None and not _alive(pid):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(directory, name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- the server ---------------------------------------------------------------------------


def open_control_socket(arbiter: Arbiter, setting: str, take_over: bool = False) -> ControlServer | None:
    """The master's control socket per ``--control-socket`` (None: off).

    A path given explicitly must work, or the master does not start
    (:class:`BootError`). The default location is a convenience: when it
    cannot be used, the master logs why and serves without a control socket.
    """
    if not setting:
        return None
    if not hasattr(socket, "AF_UNIX"):  # pragma: no cover - the master needs POSIX anyway
        return None
    try:
        server = ControlServer(arbiter, setting, take_over)
    except BootError as exc:
        if setting != AUTO:
            raise
        log.warning("%s: the control socket is off (greenserve ctl cannot reach this master)", exc)
        return None
    log.info("Control socket: %s (%d)", server.path, arbiter.pid)
    return server


class _Client:
    __slots__ = ("deadline", "inbox", "outbox", "peer", "reply", "sock")

    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.sock = sock
        self.peer = peer
        self.inbox = b""
        self.outbox = b""
        #: Builds the reply once the loop has handled the command (commands that act).
        self.reply: Callable[[], dict[str, Any]] | None = None
        self.deadline = time.monotonic() + TIMEOUT


class ControlServer:
    """The control socket of one master, served from the master's loop.

    ``setting`` is ``--control-socket``: :data:`AUTO` or a path. ``take_over``:
    this master was started by ``SIGUSR2`` and may replace its parent's live
    socket at an explicit path (the parent's stays open, unreachable, until it
    exits).
    """

    def __init__(self, arbiter: Arbiter, setting: str, take_over: bool = False) -> None:
        self.arbiter = arbiter
        self.started = time.time()
        self.explicit = setting != AUTO
        self.path = os.path.abspath(setting) if self.explicit else ""
        self.sock: socket.socket | None = None
        self._identity: tuple[int, int] | None = None
        self._clients: dict[int, _Client] = {}
        if self.explicit:
            check_directory(self.path)
            self._bind(take_over)
        else:
            self._bind_default(arbiter.pid)

    # -- the socket file ---------------------------------------------------------------------

    def _bind_default(self, pid: int) -> None:
        for directory in runtime_directories():
            if not os.path.isdir(os.path.dirname(directory)):
                continue
            try:
                private_directory(directory)
            except PermissionError:
                continue  # not ours to create in (a read-only or foreign runtime directory): next
            except OSError as exc:
                if exc.errno in (errno.EROFS, errno.EACCES):
                    continue
                raise BootError(f"control socket directory {directory}: {exc.strerror}") from None
            remove_stale(directory)
            self.path = os.path.join(directory, socket_name(pid))
            self._bind(take_over=False)
            return
        raise BootError("no directory for the control socket: give --control-socket PATH")

    def _bind(self, take_over: bool) -> None:
        path = self.path
        replace = self._clear(path, take_over)
        target = os.path.join(os.path.dirname(path), f".{os.getpid()}.sock-new") if replace else path
        sock = _Socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # no moment when the file is open to others
        try:
            sock.bind(target)
            os.chmod(target, 0o600)
            if replace:
                os.replace(target, path)  # atomically: clients never find no socket
        except OSError as exc:
            sock.close()
            with contextlib.suppress(OSError):
                if replace:
                    os.unlink(target)
            raise BootError(f"control socket {path}: {exc.strerror or exc}") from None
        finally:
            os.umask(old_umask)
        sock.listen(_BACKLOG)
        sock.setblocking(False)
        info = os.lstat(path)
        self._identity = (info.st_dev, info.st_ino)
        self.sock = sock

    @staticmethod
    def _clear(path: str, take_over: bool) -> bool:
        """Make room at ``path``: remove a stale socket; True if a live one is to be replaced."""
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise BootError(f"control socket {path}: {exc.strerror}") from None
        if not stat.S_ISSOCK(info.st_mode):
            raise BootError(f"control socket {path}: the file exists and is not a socket")
        probe = _Socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # left by a master that was killed
            return False
        except OSError as exc:
            raise BootError(f"control socket {path}: cannot check the existing socket: {exc}") from None
        finally:
            probe.close()
        if take_over:
            return True
        raise BootError(
            f"control socket {path}: another server is listening on it: stop it, "
            "or give this one another --control-socket"
        )

    def _owns_path(self) -> bool:
        """The socket file is still this master's (after SIGUSR2 a new master may have replaced it)."""
        try:
            info = os.lstat(self.path)
        except OSError:
            return False
        return (info.st_dev, info.st_ino) == self._identity

    def reclaim(self) -> None:
        """The master this one started (SIGUSR2) has exited: take the socket file back if it took it."""
        if self._owns_path() or self.sock is None:
            return
        self.sock.close()
        self.sock = None
        try:
            self._bind(take_over=False)
        except BootError as exc:
            log.warning("%s; the control socket is off", exc)
            return
        log.info("Control socket: %s is this master's again", self.path)

    # -- driven by the loop --------------------------------------------------------------------

    def prepare(self) -> tuple[list[int], list[int]]:
        """Before each select(): answer the commands the loop has handled; the fds to watch.

        The loop handles its queue (signals and queued commands) right after
        select() returns, so by the next call every queued command is done.
        """
        for client in list(self._clients.values()):
            if client.reply is not None:
                build, client.reply = client.reply, None
                self._answer(client, build())
        reading: list[int] = []
        if self.sock is not None and len(self._clients) < MAX_CLIENTS:
            reading.append(self.sock.fileno())
        reading += [fd for fd, c in self._clients.items() if not c.outbox and c.reply is None]
        writing = [fd for fd, c in self._clients.items() if c.outbox]
        return reading, writing

    def handle(self, readable: list[int], writable: list[int]) -> None:
        """After select(): read requests, send replies, drop clients past their deadline, accept.

        Accepting last: a client accepted now may get the descriptor number of
        one dropped above, which ``readable`` does not speak of.
        """
        now = time.monotonic()
        for fd, client in list(self._clients.items()):
            try:
                if fd in readable and not client.outbox and client.reply is None:
                    self._read(client)
                if fd in writable and client.outbox:
                    self._write(client)
            except BlockingIOError:
                pass  # not ready after all: next pass
            except OSError:
                self._drop(client)
                continue
            if now > client.deadline and fd in self._clients:
                self._drop(client)
        if self.sock is not None and self.sock.fileno() in readable:
            self._accept()

    def close(self) -> None:
        """At exit: close every connection, remove the socket file if it is still this master's."""
        for client in list(self._clients.values()):
            self._drop(client)
        if self.sock is not None:
            if self._owns_path():
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
            self.sock.close()
            self.sock = None

    def close_in_child(self) -> None:
        """In a new worker: close the master's sockets, leave the file alone."""
        for client in self._clients.values():
            client.sock.close()
        self._clients = {}
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    # -- one client ------------------------------------------------------------------------------

    def _accept(self) -> None:
        assert self.sock is not None
        for _ in range(MAX_CLIENTS):
            try:
                # _accept(): a plain descriptor, whatever --preload's gevent did to socket.socket.
                fd, _ = self.sock._accept()  # type: ignore[attr-defined]
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EINTR):
                    log.warning("control socket: accept() failed: %s", exc)
                return
            sock = _Socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fileno=fd)
            sock.setblocking(False)
            peer = _peer(sock)
            if peer is None:  # the file's mode should have stopped them: defence in depth
                sock.close()
                continue
            self._clients[fd] = _Client(sock, peer)
            if len(self._clients) >= MAX_CLIENTS:
                return

    def _read(self, client: _Client) -> None:
        data = client.sock.recv(MAX_REQUEST + 1)
        if data:
            client.inbox += data
        end = client.inbox.find(b"\n")
        if end < 0 and len(client.inbox) > MAX_REQUEST:
            self._answer(client, _error(f"request too large (more than {MAX_REQUEST} bytes)"))
            return
        if end < 0 and data:
            return  # the rest of the line is on its way
        if end < 0 and not client.inbox:
            self._drop(client)  # connected and left
            return
        line = client.inbox if end < 0 else client.inbox[:end]
        if len(line) > MAX_REQUEST:
            self._answer(client, _error(f"request too large (more than {MAX_REQUEST} bytes)"))
            return
        reply = self._dispatch(client, line)
        if callable(reply):
            client.reply = reply  # the loop handles the command first: answered by prepare()
        else:
            self._answer(client, reply)

    def _answer(self, client: _Client, reply: dict[str, Any]) -> None:
        client.outbox = json.dumps(reply, separators=(",", ":"), default=str).encode("utf-8") + b"\n"
        try:
            self._write(client)
        except BlockingIOError:
            pass  # the loop sends the rest when the socket can take it
        except OSError:
            self._drop(client)

    def _write(self, client: _Client) -> None:
        sent = client.sock.send(client.outbox)
        client.outbox = client.outbox[sent:]
        if not client.outbox:
            self._drop(client)

    def _drop(self, client: _Client) -> None:
        self._clients.pop(client.sock.fileno(), None)
        with contextlib.suppress(OSError):
            client.sock.close()

    # -- commands --------------------------------------------------------------------------------

    def _dispatch(self, client: _Client, line: bytes) -> dict[str, Any] | Callable[[], dict[str, Any]]:
        """One request line -> the reply, or for a command that acts, what builds it once handled."""
        try:
            request = json.loads(line)
        except (ValueError, RecursionError):
            return _error('not a JSON request: send one line such as {"command": "status"}')
        if not isinstance(request, dict) or not isinstance(request.get("command"), str):
            return _error('not a JSON request: send one line such as {"command": "status"}')
        command = request["command"]
        if command not in COMMANDS:
            return _error(f"unknown command {command[:40]!r} (known: {', '.join(COMMANDS)})")
        arbiter = self.arbiter
        if command in ("status", "workers", "config"):
            log.debug("Control: %s (asked by %s)", command, client.peer)
            return _run(getattr(self, f"_{command}"))
        if arbiter.stopping:
            return _error("the server is shutting down")
        count = request.get("count", 1)
        if command in ("add", "remove") and (
            not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_COUNT
        ):
            return _error(f"{command}: the count must be a whole number from 1 to {MAX_COUNT}")
        log.info(
            "Control: %s%s (asked by %s)",
            command,
            f" {count}" if command in ("add", "remove") else "",
            client.peer,
        )
        before = arbiter.num_workers
        generation = arbiter.generation
        if command == "add":
            arbiter.signal_queue.extend([signal.SIGTTIN] * count)
        elif command == "remove":  # SIGTTOU stops at 1 worker: queue no more than can be removed
            arbiter.signal_queue.extend([signal.SIGTTOU] * min(count, max(0, before - 1)))
        elif command == "reload":
            arbiter.signal_queue.append(signal.SIGHUP)
            return lambda: _run(lambda: self._reloaded(generation))
        else:
            arbiter.signal_queue.append(signal.SIGUSR1)
            return lambda: {"ok": True, "result": {"reopened": True}}
        return lambda: {"ok": True, "result": {"before": before, "wanted": arbiter.num_workers}}

    def _reloaded(self, generation: int) -> dict[str, Any]:
        arbiter = self.arbiter
        if arbiter.generation == generation:
            reason = arbiter.reload_error or "see the error log"
            raise ControlError(f"reload failed: {reason}; the current configuration is kept")
        return {"generation": arbiter.generation, "workers": arbiter.num_workers}

    def _status(self) -> dict[str, Any]:
        arbiter = self.arbiter
        config = arbiter.config
        workers = list(arbiter.workers.values())
        states = {state: sum(1 for w in workers if w.state == state) for state in (BOOTING, READY, STOPPING)}
        scheme = "https" if config.tls else "http"
        return {
            "pid": arbiter.pid,
            "version": __version__,
            "app": config.app,
            "proc_name": arbiter.proc_name,
            "started": round(self.started, 3),
            "uptime": round(time.time() - self.started, 3),
            "generation": arbiter.generation,
            "workers": {
                "wanted": arbiter.num_workers,
                "running": len(workers),
                **states,
                "current": sum(
                    1
                    for w in workers
                    if w.generation == arbiter.generation and not w.retiring and w.state != STOPPING
                ),
            },
            "stopping": arbiter.stopping,
            "new_master": arbiter.reexec_pid or None,
            "listeners": [
                listener.url("http" if listener.is_unix else scheme) for listener in arbiter.listeners
            ],
            "metrics": f"{arbiter.status.url}/metrics" if arbiter.status is not None else None,
            "control_socket": self.path,
            "restarts": dict(arbiter.restarts),
            "heartbeat_kills": arbiter.heartbeat_kills,
        }

    def _workers(self) -> dict[str, Any]:
        arbiter = self.arbiter
        now = time.monotonic()
        wall = time.time()
        rows = []
        for worker in sorted(arbiter.workers.values(), key=lambda w: w.age):
            activity = arbiter.board.activity(worker.board_slot) or {}
            state = worker.state
            if worker.aborted_at:
                state = "timed-out"
            elif worker.retiring and state != STOPPING:
                state = "retiring"
            rows.append(
                {
                    "pid": worker.pid,
                    "age": worker.age,
                    "generation": worker.generation,
                    "state": state,
                    "uptime": round(now - worker.spawned_at, 3),
                    "requests": activity.get("requests"),
                    "connections": activity.get("connections"),
                    "busy": activity.get("busy"),
                    "heartbeat_age": round(max(0.0, wall - worker.link.last_beat()), 3),
                    "rss": rss_bytes(worker.pid),
                    "max_requests": worker.max_requests,
                }
            )
        return {"generation": arbiter.generation, "workers": rows}

    def _config(self) -> dict[str, Any]:
        arbiter = self.arbiter
        sources = arbiter.sources
        settings = {
            name: {"value": jsonable(getattr(arbiter.config, name)), "source": sources.get(name, "default")}
            for name in SETTINGS
            if name not in HOOKS or getattr(arbiter.config, name) is not None
        }
        result: dict[str, Any] = {"settings": settings}
        if arbiter.num_workers != arbiter.config.workers:
            result["workers_now"] = arbiter.num_workers  # changed since by add/remove (TTIN/TTOU)
        return result


def _run(build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``{"ok": true, "result": build()}``; a refusal or a bug becomes an error reply, never a crash."""
    try:
        return {"ok": True, "result": build()}
    except ControlError as exc:
        return _error(str(exc))
    except Exception:
        log.exception("control socket: error answering a command")
        return _error("internal error (see the master's error log)")


def _error(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}


def _peer(sock: socket.socket) -> str | None:
    """``pid N, uid N`` of the client (Linux), None if it is neither this user nor root."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return "a local client"
    try:
        pid, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i")))
    except OSError:
        return "a local client"
    if uid not in (os.geteuid(), 0):
        log.warning("control socket: refused a client of uid %d (pid %d)", uid, pid)
        return None
    return f"pid {pid}, uid {uid}"


def rss_bytes(pid: int) -> int | None:
    """Resident memory of a process, from ``/proc/PID/statm`` (None where there is no /proc)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def jsonable(value: Any) -> Any:
    """A setting's value as JSON can carry it: lists for tuples, a name for a function."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if callable(value):
        return (
            f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', repr(value))} (a function)"
        )
    return repr(value)
