"""What the platform offers, decided once.

greenserve's code asks here instead of testing ``os.name`` or ``os.fork``
itself, so the single-process (Windows) path is one switch away and can be
exercised on Linux: the test suite's Windows simulation flips these for
greenserve's modules only, while gevent keeps the real platform.
"""

from __future__ import annotations

import os

#: ``fork()`` exists: the pre-fork master can run.
CAN_FORK: bool = hasattr(os, "fork")

#: POSIX signals (SIGHUP, SIGUSR1, ...) and gevent's signal watchers exist.
POSIX: bool = os.name == "posix"
