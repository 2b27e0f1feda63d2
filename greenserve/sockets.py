"""Listening sockets: TCP (IPv4/IPv6), Unix sockets and inherited descriptors.

Created by the process that supervises (the master, or the single process)
before any worker code runs, with the standard library only: workers adopt
them after gevent has patched the socket module. Shared by ``master/`` and
``single.py``, so it lives at the top level; no POSIX-only module is
imported here (Windows runs the single-process mode through it).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from greenserve import compat
from greenserve.errors import BootError, ConfigError

DEFAULT_PORT = 8000


@dataclass
class Listener:
    """A bound, listening socket and how to describe it to users and to WSGI."""

    sock: socket.socket
    #: ``"tcp"`` or ``"unix"``.
    kind: str
    #: ``SERVER_NAME`` / ``SERVER_PORT`` for requests arriving here.
    server_name: str
    server_port: str
    #: Bound to 0.0.0.0 or :: (SERVER_NAME comes from each connection instead).
    wildcard: bool = False
    #: The socket file to remove on exit (Unix sockets we created).
    unix_path: str | None = None
    #: How an inherited Unix socket is shown.
    label: str = ""
    #: Bound by one worker for itself (``--reuse-port``): the kernel spreads clients over
    #: the workers' sockets, and no other worker can accept from this one.
    per_worker: bool = False
    #: Someone else holds it too (systemd socket activation, ``fd://``): its queue
    #: outlives this server, and this server must not change its backlog.
    external: bool = False

    @property
    def is_unix(self) -> bool:
        return self.kind == "unix"

    def bind_spec(self) -> str:
        """A --bind value for this listener's actual address (port 0 resolved)."""
        if self.is_unix:
            return f"unix:{self.unix_path or self.label}"
        host = self.server_name
        return f"[{host}]:{self.server_port}" if ":" in host else f"{host}:{self.server_port}"

    def url(self, scheme: str = "http") -> str:
        if self.is_unix:
            return f"unix:{self.unix_path or self.label}"
        host = self.server_name
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.server_port}"


@dataclass(frozen=True)
class BindSpec:
    kind: str  # "tcp", "unix" or "fd"
    host: str = ""
    port: int = 0
    path: str = ""
    fd: int = -1

    @property
    def display(self) -> str:
        """The address as a user writes it: ``[::1]:8000``, ``unix:/run/app.sock``."""
        if self.kind == "unix":
            return f"unix:{self.path}"
        if self.kind == "fd":
            return f"fd://{self.fd}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_bind(spec: str) -> BindSpec:
    """``host:port``, ``[v6]:port``, ``host`` (port 8000), ``unix:/path``, ``fd://N``."""
    text = spec.strip()
    if text.startswith("unix:"):
        path = text[5:]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ConfigError(f"bind {spec!r}: a Unix socket needs a path, e.g. unix:/run/app.sock")
        return BindSpec("unix", path=path)
    if text.startswith("fd://"):
        number = text[5:]
        if not number.isdigit():
            raise ConfigError(f"bind {spec!r}: expected fd://N with N a file descriptor number")
        return BindSpec("fd", fd=int(number))
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigError(f"bind {spec!r}: expected [ipv6]:port")
        port_text = rest[1:] if rest else str(DEFAULT_PORT)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif ":" in text:
        raise ConfigError(f"bind {spec!r}: put IPv6 addresses in brackets, e.g. [::1]:8000")
    else:
        host, port_text = text, str(DEFAULT_PORT)
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(f"bind {spec!r}: invalid port {port_text!r}")
    return BindSpec("tcp", host=host or "0.0.0.0", port=int(port_text))


def validate_binds(binds: Iterable[str]) -> list[BindSpec]:
    return [parse_bind(spec) for spec in binds]


@contextlib.contextmanager
def _umask(mask: int | None) -> Iterator[None]:
    if mask is None:
        yield
        return
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _remove_stale_unix_socket(path: str) -> None:
    """Remove a socket file left by a dead server; refuse to steal a live one."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise BootError(f"bind unix:{path}: the path exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)
        return
    finally:
        probe.close()
    raise BootError(f"bind unix:{path}: another server is listening on this socket")


def _tcp_listener(spec: BindSpec, backlog: int, reuse_port: bool, listen: bool = True) -> Listener:
    try:
        infos = socket.getaddrinfo(
            spec.host, spec.port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise BootError(f"bind {spec.display}: cannot resolve {spec.host!r}: {exc}") from None
    family, socktype, proto, _, address = infos[0]
    sock = socket.socket(family, socktype, proto)
    try:
        if compat.POSIX:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and hasattr(socket, "IPV6_V6ONLY"):
            # [::] serves IPv6 only, so 0.0.0.0 can be bound next to it (as nginx does).
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if reuse_port:
            if not hasattr(socket, "SO_REUSEPORT"):
                raise BootError("--reuse-port: SO_REUSEPORT is not available on this platform")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        if listen:
            sock.listen(backlog)
    except OSError as exc:
        sock.close()
        hint = " (another server is listening there)" if exc.errno == errno.EADDRINUSE else ""
        raise BootError(f"bind {spec.display}: {exc.strerror or exc}{hint}") from None
    return _describe(sock)


def _describe(sock: socket.socket, unix_path: str | None = None) -> Listener:
    """A Listener for a bound socket, named after its actual address."""
    if sock.family == getattr(socket, "AF_UNIX", None):
        name = sock.getsockname()
        path = name.decode() if isinstance(name, bytes) else name
        return Listener(
            sock, "unix", server_name="localhost", server_port="80", unix_path=unix_path, label=path
        )
    host, port = sock.getsockname()[:2]
    return Listener(sock, "tcp", server_name=host, server_port=str(port), wildcard=host in ("0.0.0.0", "::"))


def _unix_listener(spec: BindSpec, backlog: int, umask: int | None) -> Listener:
    if not hasattr(socket, "AF_UNIX"):
        raise BootError(f"bind unix:{spec.path}: Unix sockets are not available on this platform")
    _remove_stale_unix_socket(spec.path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _umask(umask):
            sock.bind(spec.path)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BootError(f"bind unix:{spec.path}: {exc.strerror or exc}") from None
    return _describe(sock, unix_path=spec.path)


def adopt_fd(fd: int, backlog: int, owned: bool = False) -> Listener:
    """A Listener for an inherited listening socket (fd://N, systemd, USR2).

    ``owned``: this process is responsible for the Unix socket file (a
    re-executed master is); systemd's and fd:// sockets belong to whoever
    created them.
    """
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise BootError(f"fd://{fd}: not a socket: {exc.strerror or exc}") from None
    if sock.type != socket.SOCK_STREAM:
        raise BootError(f"fd://{fd}: not a stream socket")
    try:
        sock.listen(backlog)
    except OSError as exc:
        raise BootError(f"fd://{fd}: cannot listen: {exc.strerror or exc}") from None
    os.set_inheritable(fd, False)
    listener = _describe(sock)
    listener.external = not owned
    if owned and listener.is_unix:
        listener.unix_path = listener.label
    return listener


def create_listeners(
    binds: Iterable[str],
    *,
    backlog: int = 2048,
    reuse_port: bool = False,
    umask: int | None = None,
    listen: bool = True,
) -> list[Listener]:
    """Bind every address; on any failure close what was opened and raise BootError.

    ``listen=False`` (the master with --reuse-port) only reserves TCP ports:
    each worker binds and listens on its own socket, and a socket that does
    not listen receives no connections.
    """
    listeners: list[Listener] = []
    try:
        for spec in validate_binds(binds):
            if spec.kind == "unix":
                listeners.append(_unix_listener(spec, backlog, umask))
            elif spec.kind == "fd":
                listeners.append(adopt_fd(spec.fd, backlog))
            else:
                listeners.append(_tcp_listener(spec, backlog, reuse_port, listen))
    except BaseException:
        close_listeners(listeners)
        raise
    return listeners


def stop_queueing(listener: Listener, sock: socket.socket | None = None) -> None:
    """Let no new client into the listen queue of a socket about to close; keep those already in.

    Closing a listening socket resets the connections still in its queue; new
    ones keep arriving until the last descriptor closes. With a backlog of 0
    the kernel drops new connection requests instead (the client retries its
    SYN a second later, by then to a closed port: a clean refusal, with no
    request sent), so the queue can be emptied and the socket closed without
    resetting anyone. Only for a socket this server alone holds.
    """
    if listener.external:
        return
    with contextlib.suppress(OSError):
        (sock or listener.sock).listen(0)


def close_listeners(listeners: Iterable[Listener], unlink: bool = True) -> None:
    """Close the sockets and remove the Unix socket files this process created."""
    for listener in listeners:
        with contextlib.suppress(OSError):
            listener.sock.close()
        if unlink and listener.unix_path:
            with contextlib.suppress(OSError):
                os.unlink(listener.unix_path)
