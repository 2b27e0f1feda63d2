"""ASGI connection scopes (``http`` and ``websocket``), built in one place.

:func:`build_scope` makes every scope. Its inputs come from one of two places:

- a request greenserve parsed, on one of its connections (:func:`scope_for_request`):
  the usual case, with no WSGI environ in between;
- a WSGI environ, when an :class:`~greenserve.asgi.bridge.ASGIBridge` is mounted
  inside a WSGI application that another server runs (:func:`scope_for_environ`).
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import unquote_to_bytes

from greenserve.protocol.environ import split_target
from greenserve.protocol.events import Request
from greenserve.protocol.proxy import ProxyPolicy, apply_proxy_to_scope

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}


class ConnectionInfo(Protocol):
    """What a scope needs to know about the connection a request arrived on.

    A TLS connection also has ``tls_extension``: the ASGI ``tls`` extension's
    value, or None when the worker serves WSGI (read with getattr: plain
    connections have no such attribute).
    """

    #: The listener's constant WSGI environ entries (scheme, server address, root path).
    base: dict[str, Any]
    #: (address, port) of the client, as strings ("" for a Unix socket peer).
    remote: tuple[str, str]
    #: The same with an int port (the scope's ``client``), None for a Unix socket peer.
    peer: tuple[str, int] | None
    #: The local address, when the listener is a wildcard one.
    server_name: str | None
    #: The policy for forwarded headers when the peer is a trusted proxy, else None.
    proxy: ProxyPolicy | None
    #: The PROXY protocol header a load balancer sent (--proxy-protocol), else None.
    proxy_header: Any
    #: The current request's id (--request-id), else None.
    request_id: str | None


def build_scope(
    kind: str,
    http_version: str,
    method: str,
    scheme: str,
    path: str,
    raw_path: bytes,
    query_string: bytes,
    root_path: str,
    headers: list[tuple[bytes, bytes]],
    client: tuple[str, int] | None,
    server: tuple[str, int] | None,
    state: dict[str, Any],
    /,
) -> dict[str, Any]:
    """An ASGI scope of ``kind`` ("http" or "websocket").

    ``path`` is decoded and without ``root_path`` (WSGI's PATH_INFO); the
    scope's ``path`` includes it, as the ASGI spec asks ("PATH_INFO can be
    derived by stripping root_path from path"). ``raw_path`` is as received.
    Positional only: matching twelve keywords cost 700 of the 150,000
    instructions of an ASGI hello-world request (bench/instructions.py).
    """
    if kind == "websocket":
        return {
            "type": "websocket",
            "asgi": ASGI_VERSION,
            "http_version": http_version,
            "scheme": "wss" if scheme == "https" else "ws",
            "path": root_path + path,
            "raw_path": raw_path,
            "query_string": query_string,
            "root_path": root_path,
            "headers": headers,
            "client": client,
            "server": server,
            "subprotocols": [],
            "state": state.copy(),
            "extensions": {"websocket.http.response": {}},
        }
    return {
        "type": "http",
        "asgi": ASGI_VERSION,
        "http_version": http_version,
        "method": method,
        "scheme": scheme,
        "path": root_path + path,
        "raw_path": raw_path,
        "query_string": query_string,
        "root_path": root_path,
        "headers": headers,
        "client": client,
        "server": server,
        "state": state.copy(),
    }


_PORT_NUMBERS: dict[str, int] = {}


def _port_number(port: str) -> int:
    """``int(port)`` for a server port not in ``_PORT_NUMBERS`` yet (callers look there first).

    A few listeners' ports, each parsed once: the lookup costs 400 instructions
    less than ``int()`` per request.
    """
    number = int(port)
    if len(_PORT_NUMBERS) >= 64:  # PROXY headers name server ports too: keep it bounded
        _PORT_NUMBERS.clear()
    _PORT_NUMBERS[port] = number
    return number


def scope_for_request(
    kind: str, request: Request, connection: ConnectionInfo, state: dict[str, Any]
) -> dict[str, Any]:
    """The scope for a request greenserve parsed (header names arrive lower-cased, as ASGI wants)."""
    target = request.target
    if target[:1] == b"/" and target.find(b"#") < 0:  # origin-form (find(): see split_target)
        raw_path, _, query = target.partition(b"?")
    else:
        raw_path, query = split_target(target)
    base = connection.base
    path = (unquote_to_bytes(raw_path) if raw_path.find(b"%") >= 0 else raw_path).decode("utf-8", "replace")
    root_path = base["SCRIPT_NAME"]
    if root_path and (path == root_path or path.startswith(root_path + "/")):
        path = path[len(root_path) :]  # the client sent the prefix: not twice in the scope's path
    port = base["SERVER_PORT"]
    scope = build_scope(
        kind,
        request.version,
        request.method,
        base["wsgi.url_scheme"],
        path,
        raw_path,
        query,  # query_string
        root_path,
        request.headers,
        connection.peer,  # client
        # server:
        (connection.server_name or base["SERVER_NAME"], _PORT_NUMBERS.get(port) or _port_number(port)),
        state,
    )
    if connection.proxy is not None and request.forwarded:
        apply_proxy_to_scope(scope, connection.proxy)
    if connection.proxy_header is not None:
        scope["extensions"] = {
            **scope.get("extensions", {}),
            "greenserve.proxy_protocol": {"header": connection.proxy_header},
        }
    # A TLS connection's ASGI tls extension, made once after its handshake (greenserve/worker/tls.py).
    tls = getattr(connection, "tls_extension", None)
    if tls is not None:
        scope["extensions"] = {**scope.get("extensions", {}), "tls": dict(tls)}
    if connection.request_id is not None:
        _add_request_id(scope, connection.request_id)
    return scope


def _add_request_id(scope: dict[str, Any], request_id: str) -> None:
    """``scope["extensions"]["greenserve.request_id"] = {"id": request_id}`` (--request-id).

    An extension, as the PROXY protocol header is: the ASGI spec reserves
    ``extensions`` for what the server adds (each extension's value a dict),
    while ``state`` belongs to the application's lifespan.
    """
    scope["extensions"] = {**scope.get("extensions", {}), "greenserve.request_id": {"id": request_id}}


def scope_for_environ(kind: str, environ: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """The scope for a WSGI environ (a bridge mounted in a WSGI application).

    Inside greenserve the parsed request is in the environ and its headers are
    used as they arrived; under another server they are rebuilt from the
    ``HTTP_*`` keys.
    """
    request = environ.get("greenserve.request")
    if request is not None:
        headers = request.headers
    else:
        headers = [
            (key[5:].replace("_", "-").lower().encode("latin-1"), value.encode("latin-1"))
            for key, value in environ.items()
            if key.startswith("HTTP_")
        ]
        for key, name in (("CONTENT_TYPE", b"content-type"), ("CONTENT_LENGTH", b"content-length")):
            if environ.get(key):
                headers.append((name, environ[key].encode("latin-1")))
    remote = environ.get("REMOTE_ADDR")
    try:
        client = (remote, int(environ.get("REMOTE_PORT") or 0)) if remote else None
        server = (environ["SERVER_NAME"], int(environ["SERVER_PORT"]))
    except (KeyError, ValueError):
        client = server = None
    raw_uri = environ.get("RAW_URI") or environ.get("PATH_INFO", "")
    scope = build_scope(
        kind,
        environ["SERVER_PROTOCOL"][5:],  # http_version
        environ["REQUEST_METHOD"],
        environ["wsgi.url_scheme"],
        # PATH_INFO holds the path's bytes as latin-1 text (PEP 3333): UTF-8 for ASGI.
        environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace"),
        raw_uri.split("?", 1)[0].encode("latin-1"),  # raw_path
        environ.get("QUERY_STRING", "").encode("latin-1"),
        environ.get("SCRIPT_NAME", ""),  # root_path
        headers,
        client,
        server,
        state,
    )
    request_id = environ.get("greenserve.request_id")
    if isinstance(request_id, str):  # greenserve's --request-id, or a middleware's
        _add_request_id(scope, request_id)
    return scope
