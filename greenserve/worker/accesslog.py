"""One access log line per request, in gunicorn's format language.

Atoms are computed only when the format uses them: ``fmt % atoms`` asks the
mapping for each ``%(name)s`` it contains, and :class:`_Atoms` computes it on
demand. When the access log is off, no :class:`AccessLog` exists and
requests pay nothing.

Every atom a client can influence (the request line, headers, the user, the
path...) is escaped as nginx escapes its access log (see
:func:`greenserve.logs.escape`): a request cannot end the line it is logged
on, start a forged one, or hide an escape sequence for the terminal. With
JSON lines (or a ``--log-config``), each record also carries the request's
fields unescaped, for the JSON encoder to quote.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from greenserve.logs import ACCESS_LOGGER, escape

if TYPE_CHECKING:
    from greenserve.protocol.exchange import Exchange as WSGIResponse


def _latin1_fallback(exc: UnicodeError) -> tuple[str, int]:
    assert isinstance(exc, UnicodeDecodeError)
    return exc.object[exc.start : exc.end].decode("latin-1"), exc.end


codecs.register_error("greenserve.latin1", _latin1_fallback)


def _text(value: str) -> str:
    """A request value (bytes as latin-1, per PEP 3333) as text: UTF-8 where it is valid.

    Bytes that are not valid UTF-8 stay latin-1 characters, one per byte, so
    nothing is lost. A value with characters beyond latin-1 was made by the
    application, not read from the wire: it is kept as it is.
    """
    if value.isascii():
        return value
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        return value
    return raw.decode("utf-8", "greenserve.latin1")


def _basic_auth_user(environ: dict[str, Any]) -> str:
    user = environ.get("REMOTE_USER")
    if user:
        return user
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if auth[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("latin-1")
        except (binascii.Error, ValueError):
            return "-"
        return decoded.split(":", 1)[0] or "-"
    return "-"


class _Atoms(dict):
    __slots__ = ("environ", "request_time", "response")

    def __init__(self, environ: dict[str, Any], response: WSGIResponse, request_time: float) -> None:
        super().__init__()
        self.environ = environ
        self.response = response
        self.request_time = request_time

    def __missing__(self, key: str) -> str:
        environ = self.environ
        if key.startswith("{") and key.endswith("}i"):
            name = key[1:-2].upper().replace("-", "_")
            if name not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                name = "HTTP_" + name
            return escape(environ.get(name, "-"))
        if key.startswith("{") and key.endswith("}o"):
            wanted = key[1:-2].lower()
            head = self.response.head
            if head is not None:
                for name, value in head.headers:
                    if isinstance(name, bytes):  # an ASGI application's headers
                        if name.decode("latin-1").lower() == wanted:
                            return escape(value.decode("latin-1"))
                    elif name.lower() == wanted:
                        return escape(value)
            return "-"
        if key.startswith("{") and key.endswith("}e"):
            return escape(str(environ.get(key[1:-2], "-")))
        atom = _ATOMS.get(key)
        if atom is None:
            return "-"
        return atom(self)


def _request_line(atoms: _Atoms) -> str:
    environ = atoms.environ
    return escape(f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}")


#: Atoms marked "client" in docs/logging.md are escaped; the others are made
#: by the server (numbers, times) or by the operator.
_ATOMS = {
    "h": lambda a: escape(a.environ.get("REMOTE_ADDR") or "-"),
    "l": lambda a: "-",
    "u": lambda a: escape(str(_basic_auth_user(a.environ))),
    "t": lambda a: time.strftime("[%d/%b/%Y:%H:%M:%S %z]"),
    "r": _request_line,
    "m": lambda a: escape(a.environ["REQUEST_METHOD"]),
    "U": lambda a: escape(a.environ["PATH_INFO"]),
    "q": lambda a: escape(a.environ["QUERY_STRING"]),
    "H": lambda a: escape(a.environ["SERVER_PROTOCOL"]),
    "s": lambda a: str(a.response.status),
    "B": lambda a: str(a.response.body_bytes),
    "b": lambda a: str(a.response.body_bytes) if a.response.body_bytes else "-",
    "f": lambda a: escape(a.environ.get("HTTP_REFERER", "-")),
    "a": lambda a: escape(a.environ.get("HTTP_USER_AGENT", "-")),
    "T": lambda a: str(int(a.request_time)),
    "M": lambda a: str(int(a.request_time * 1000)),
    "D": lambda a: str(int(a.request_time * 1_000_000)),
    "L": lambda a: f"{a.request_time:.6f}",
    "p": lambda a: f"<{os.getpid()}>",
    # --request-id (greenserve's own atom, not gunicorn's). Valid ids print unchanged; escaped
    # anyway, since an application may have replaced the environ's value.
    "request_id": lambda a: escape(str(a.environ.get("greenserve.request_id") or "-")),
}


def _optional(value: Any) -> Any:
    return _text(value) if isinstance(value, str) else value


def access_fields(environ: dict[str, Any], response: WSGIResponse, request_time: float) -> dict[str, Any]:
    """The request's fields for a JSON line (``greenserve.logs.ACCESS_FIELDS``), unescaped.

    Strings are text (UTF-8 where valid, latin-1 for other bytes); absent
    headers, a Unix socket's address and a missing request id are None.
    """
    get = environ.get
    return {
        "method": environ["REQUEST_METHOD"],
        "path": _text(get("SCRIPT_NAME", "") + environ["PATH_INFO"]),
        "query": _text(environ["QUERY_STRING"]),
        "status": response.status,
        "bytes": response.body_bytes,
        "duration": round(request_time, 6),
        "remote": get("REMOTE_ADDR") or None,
        "request_id": get("greenserve.request_id", None),
        "user_agent": _optional(get("HTTP_USER_AGENT")),
        "referer": _optional(get("HTTP_REFERER")),
        "protocol": environ["SERVER_PROTOCOL"],
    }


class AccessLog:
    """Formats and emits access log lines to the ``greenserve.access`` logger.

    ``fields``: attach :func:`access_fields` to each record (JSON lines, or a
    ``--log-config`` whose formatter may use them); a few microseconds more.
    """

    __slots__ = ("_fields", "_format", "_logger")

    def __init__(self, fmt: str, logger: logging.Logger | None = None, *, fields: bool = False) -> None:
        self._format = fmt
        self._logger = logger or logging.getLogger(ACCESS_LOGGER)
        self._fields = fields

    def format(self, environ: dict[str, Any], response: WSGIResponse, request_time: float) -> str:
        return self._format % _Atoms(environ, response, request_time)

    def log(self, environ: dict[str, Any], response: WSGIResponse, request_time: float) -> None:
        try:
            line = self._format % _Atoms(environ, response, request_time)
        except (KeyError, ValueError, TypeError) as exc:
            request = escape(f"{environ.get('REQUEST_METHOD')} {environ.get('RAW_URI')}")
            line = f"invalid --access-logformat ({exc}): {request}"
        if self._fields:
            self._logger.info(line, extra=access_fields(environ, response, request_time))
        else:
            self._logger.info(line)
