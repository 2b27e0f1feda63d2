"""systemd integration: socket activation (``LISTEN_FDS``) and ``sd_notify``.

Implemented from the documented protocol (sd_listen_fds(3), sd_notify(3))
with the standard library, so no libsystemd binding is needed.
"""

from __future__ import annotations

import os
import socket

SD_LISTEN_FDS_START = 3


def listen_fds(unset: bool = True) -> list[int]:
    """File descriptors passed by systemd socket activation to this process."""
    pid = os.environ.get("LISTEN_PID", "")
    count = os.environ.get("LISTEN_FDS", "")
    if unset:
        for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            os.environ.pop(name, None)
    if not count.isdigit() or not pid.isdigit() or int(pid) != os.getpid():
        return []
    return list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count)))


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``READY=1``) to systemd when ``NOTIFY_SOCKET`` is set."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or not hasattr(socket, "AF_UNIX"):
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True
