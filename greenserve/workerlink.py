"""The link between the master and one worker process.

Made by the master before it forks, used by both sides afterwards:

- a **heartbeat file** in ``--worker-tmp-dir``: the worker changes the file's
  mode every second from a greenlet, which updates its ctime; the master
  reads the ctime. If the worker's gevent hub is blocked (a greenlet spinning
  the CPU, a C call that never returns), the beats stop and the master acts
  after ``--timeout``. One syscall a second on each side, and the master
  needs no other channel to notice a hung worker.
- a **control pipe**, worker to master, for one-byte messages: the worker is
  ready (accepting), or wants to retire (``--max-requests``) once a
  replacement is ready.

The master also makes one :class:`LoadBoard` for all its workers: how many
connections each holds, so that they share new clients evenly (see
docs/design.md, "Spreading connections over workers"), and what each has
done so far, for ``greenserve ctl workers``.

Standard library only: the master imports this module.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any

MSG_READY = b"R"
MSG_RETIRE = b"Q"
#: Followed by one line of text: why the worker could not start.
MSG_ERROR = b"E"


def parse_messages(data: bytes) -> list[tuple[bytes, str]]:
    """``b"RQEno module named x\\n"`` -> ``[(b"R", ""), (b"Q", ""), (b"E", "no module named x")]``."""
    messages = []
    pos = 0
    while pos < len(data):
        kind = data[pos : pos + 1]
        pos += 1
        if kind == MSG_ERROR:
            end = data.find(b"\n", pos)
            end = len(data) if end < 0 else end
            messages.append((kind, data[pos:end].decode("utf-8", "replace")))
            pos = end + 1
        else:
            messages.append((kind, ""))
    return messages


def default_tmp_dir() -> str | None:
    """``/dev/shm`` when it exists: a disk-backed /tmp can stall the heartbeat."""
    shm = "/dev/shm"  # noqa: S108 - a private, randomly named, unlinked file
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


class WorkerLink:
    """Heartbeat file + control pipe for one worker."""

    def __init__(self, tmp_dir: str | None = None) -> None:
        fd, path = tempfile.mkstemp(prefix="greenserve-heartbeat-", dir=tmp_dir or default_tmp_dir())
        os.unlink(path)  # anonymous: nothing to clean up if the master dies
        self.heartbeat_fd = fd
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        self._spinner = 0
        self.created = time.time()

    # -- worker side -------------------------------------------------------------

    def after_fork_in_worker(self) -> None:
        os.close(self.read_fd)
        self.read_fd = -1

    def beat(self) -> None:
        """Prove the worker's event loop is alive (changes the file's ctime)."""
        self._spinner ^= 1
        os.fchmod(self.heartbeat_fd, 0o600 | self._spinner)

    def send(self, message: bytes, text: str = "") -> None:
        if text:
            message += text.replace("\n", " ")[:1000].encode("utf-8", "replace") + b"\n"
        with contextlib.suppress(OSError):
            os.write(self.write_fd, message)

    # -- master side -------------------------------------------------------------

    def after_fork_in_master(self) -> None:
        os.close(self.write_fd)
        self.write_fd = -1

    def last_beat(self) -> float:
        """Wall-clock time of the last heartbeat (the spawn time before the first)."""
        try:
            return max(os.fstat(self.heartbeat_fd).st_ctime, self.created)
        except OSError:
            return self.created

    def receive(self) -> bytes:
        """Messages the worker sent since the last call (non-blocking)."""
        try:
            return os.read(self.read_fd, 512)
        except (BlockingIOError, OSError):
            return b""

    def close(self) -> None:
        for fd in (self.heartbeat_fd, self.read_fd, self.write_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.heartbeat_fd = self.read_fd = self.write_fd = -1


class LoadBoard:
    """Connections held by each worker, in memory the master shares with every worker it forks.

    One 32-bit slot per worker; the master hands out slots and frees them as
    workers come and go. A worker writes only its own slot: its number of
    connections while it accepts, :data:`NOT_ACCEPTING` otherwise (booting,
    draining, exited). A worker reads the others' slots to decide whether to
    leave a waiting client to a less loaded worker. Aligned 32-bit stores and
    loads are atomic on every platform CPython runs on; a reader may see a value
    one update old, which only delays the balance by one connection. The first
    slot holds how many slots are in use, so readers scan no further.

    Beside the balance, each slot has a few 64-bit activity cells (requests
    served, open connections, busy connections) that its worker refreshes at
    each heartbeat, for the master's control socket. Writing them then, not per
    request, keeps them free on the hot path and available whether or not
    ``--metrics-bind`` is on; they are at most one heartbeat old.
    """

    #: A slot's value when its worker does not take new connections.
    NOT_ACCEPTING = -1
    #: Workers alive at once, old generations included: 16 KiB of shared memory.
    SLOTS = 4096
    #: The activity cells of each slot, in order (see :meth:`report`).
    ACTIVITY = ("requests", "connections", "busy")

    def __init__(self, slots: int = SLOTS) -> None:
        self._map = mmap.mmap(-1, (slots + 1) * 4)  # anonymous and shared: inherited across fork
        self._counts = memoryview(self._map).cast("i")
        for index in range(1, slots + 1):
            self._counts[index] = self.NOT_ACCEPTING
        self._counts[0] = 1
        self._used: set[int] = set()
        width = len(self.ACTIVITY)
        self._activity_map = mmap.mmap(-1, (slots + 1) * width * 8)  # zero-filled, shared the same way
        self._activity = memoryview(self._activity_map).cast("q")

    # -- master side -------------------------------------------------------------

    def allocate(self) -> int:
        """A free slot for a new worker (-1 when all are taken: that worker does not take part)."""
        for index in range(1, len(self._counts)):
            if index not in self._used:
                self._used.add(index)
                self._counts[index] = self.NOT_ACCEPTING
                width = len(self.ACTIVITY)
                for cell in range(index * width, (index + 1) * width):
                    self._activity[cell] = 0  # the slot's previous worker reported there
                self._counts[0] = max(self._counts[0], index + 1)
                return index
        return -1

    def release(self, slot: int) -> None:
        """The worker in ``slot`` exited: its slot no longer counts."""
        if slot > 0:
            self._counts[slot] = self.NOT_ACCEPTING
            self._used.discard(slot)

    # -- worker side -------------------------------------------------------------

    def publish(self, slot: int, connections: int) -> None:
        if slot > 0:
            self._counts[slot] = connections

    def report(self, slot: int, requests: int, connections: int, busy: int) -> None:
        """At a heartbeat: requests served so far, connections open, connections busy with a request."""
        if slot > 0:
            base = slot * len(self.ACTIVITY)
            cells = self._activity
            cells[base] = requests
            cells[base + 1] = connections
            cells[base + 2] = busy

    def fewest_elsewhere(self, slot: int) -> int:
        """The fewest connections held by another accepting worker (a large number if none)."""
        counts = self._counts
        fewest = 1 << 30
        for index, count in enumerate(counts[: counts[0]].tolist()):
            if 0 <= count < fewest and index != slot and index:
                fewest = count
        return fewest

    def counts(self) -> list[int]:
        """The value of every slot handed out so far (index 0 first), for tests and status reports."""
        counts = self._counts
        return counts[1 : counts[0]].tolist()

    def activity(self, slot: int) -> dict[str, int] | None:
        """What the worker in ``slot`` last reported (see :meth:`report`); None without a slot."""
        if slot <= 0:
            return None
        width = len(self.ACTIVITY)
        return dict(
            zip(self.ACTIVITY, self._activity[slot * width : (slot + 1) * width].tolist(), strict=True)
        )

    def close(self) -> None:
        self._counts.release()
        self._map.close()
        self._activity.release()
        self._activity_map.close()


@dataclass
class WorkerStart:
    """Everything a forked worker gets from its master: plain values, no master code.

    The master builds one in the child right after ``fork()`` and passes it to
    the worker's entry point, which it names by import string
    (``greenserve.worker.entry:main``).
    """

    config: Any  # greenserve.config.Config
    #: The master's listening sockets (the worker may bind its own with --reuse-port).
    listeners: list[Any]
    link: WorkerLink
    #: The master's record of this worker, passed to hooks as ``worker``.
    worker: Any
    #: What hooks receive as ``server``/``arbiter`` (gunicorn's signature: post_fork(server, worker)).
    hook_server: Any
    master_pid: int
    uid: int | None
    gid: int | None
    proc_title: str
    #: Signals the master blocked around fork(), to unblock once the child set its own handlers.
    unblock_signals: tuple[int, ...]
    multiprocess: bool
    #: The application when the master imported it (--preload).
    preloaded_app: Any = None
    board: LoadBoard | None = None
    board_slot: int = -1
    #: Where this worker counts for --metrics-bind (greenserve.metrics.WorkerMetrics).
    metrics: Any = None
