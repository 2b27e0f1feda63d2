"""Exceptions and process exit codes.

Exit codes are the protocol between a worker and whoever started it (the
master, systemd, a shell): a worker that cannot load the application must
not be restarted in a loop, so that failure has its own code.
"""

from __future__ import annotations

#: Clean shutdown.
EXIT_OK = 0
#: Unexpected failure.
EXIT_ERROR = 1
#: Bad command line or configuration (argparse uses 2 too).
EXIT_CONFIG = 2
#: The worker could not start (sockets, TLS files, hooks): do not respawn.
EXIT_BOOT_ERROR = 3
#: The application could not be imported or is not callable: do not respawn.
EXIT_APP_LOAD_ERROR = 4


class GreenserveError(Exception):
    """Base class for errors greenserve reports to the user in one line."""

    exit_code = EXIT_ERROR


class ConfigError(GreenserveError):
    """A setting has a bad value, or a configuration file is invalid."""

    exit_code = EXIT_CONFIG


class AppLoadError(GreenserveError):
    """The application spec could not be resolved to a callable."""

    exit_code = EXIT_APP_LOAD_ERROR


class BootError(GreenserveError):
    """The worker could not start serving (sockets, TLS, lifespan)."""

    exit_code = EXIT_BOOT_ERROR


class ProtocolError(Exception):
    """The client broke HTTP/1.1; answer ``status`` and close the connection.

    Raised by the sans-IO protocol layer; the application is never called for
    a request that raised it.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def __repr__(self) -> str:
        return f"ProtocolError({self.status}, {self.reason!r})"


class ClientDisconnected(OSError):
    """The client went away while the application was reading or writing.

    An ``OSError`` so applications that already handle I/O errors on
    ``wsgi.input`` or ``write()`` handle this too.
    """


class RequestBodyError(OSError):
    """The request body broke the protocol or a limit while the app read it.

    Raised from ``wsgi.input``. If the application lets it propagate, the
    client gets ``status`` (400 or 413) instead of a 500.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class RequestTimeout(BaseException):
    """``--request-timeout`` expired: raised into the request's greenlet.

    A BaseException, like gevent's Timeout, so an application's
    ``except Exception`` does not swallow the cancellation. The ASGI bridge
    cancels the application's task when it sees one.
    """
