"""Trusted reverse-proxy headers: client address, scheme, host, port and prefix behind a proxy.

Only connections from addresses in ``--forwarded-allow-ips`` (and Unix
sockets, which only local processes can reach, unless
``--no-trust-unix-peers``) may set ``REMOTE_ADDR`` and ``wsgi.url_scheme``
through ``X-Forwarded-For``/``X-Forwarded-Proto`` or ``Forwarded``, and, when
each is switched on, the host (``X-Forwarded-Host``), port
(``X-Forwarded-Port``) and mount prefix (``X-Forwarded-Prefix``); from anyone
else those headers stay plain request headers.

The rules live once, in :func:`_resolve`; :func:`apply_proxy_headers` writes
its answer into a WSGI environ and :func:`apply_proxy_to_scope` into an ASGI
scope. :class:`ProxyPolicy` is also the allow list of ``--proxy-allow-from``
(who may send a PROXY protocol preamble).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any, NamedTuple
from urllib.parse import unquote_to_bytes

from greenserve.addresses import parse_allow_list

_SCHEMES = frozenset(("http", "https"))
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}
_WEBSOCKET_SCHEMES = {"http": "ws", "https": "wss"}

# A Host value: a DNS name or IPv4 address, or a bracketed IPv6 address, then
# an optional port. Anything else (CR/LF, spaces, userinfo, paths) is refused.
_HOST_RE = re.compile(
    r"(?:([A-Za-z0-9_][A-Za-z0-9._-]{0,252})|\[([0-9A-Fa-f:.]{2,45})\])"  # name | [IPv6]
    r"(?::([0-9]{1,5}))?"  # :port
)
# A prefix as sent: printable ASCII, no query, fragment or backslash.
_PREFIX_RE = re.compile(r"/[!$&'()*+,\-./0-9:;=@A-Z_a-z~%]*")
_PERCENT_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")


class ProxyPolicy:
    """Which peers are trusted proxies, and which of their headers apply. Built once per worker.

    ``trust_unix`` decides for peers of Unix-socket listeners, which have no
    address (``trusts(None)``): trusted by default, since only local processes
    allowed to open the socket file can connect. ``forwarded_host``,
    ``forwarded_port`` and ``forwarded_prefix`` switch on ``X-Forwarded-Host``,
    ``X-Forwarded-Port`` and ``X-Forwarded-Prefix``.
    """

    __slots__ = (
        "_all",
        "_literals",
        "_networks",
        "forwarded_host",
        "forwarded_port",
        "forwarded_prefix",
        "trust_unix",
    )

    def __init__(
        self,
        allow: Iterable[str],
        *,
        trust_unix: bool = True,
        forwarded_host: bool = False,
        forwarded_port: bool = False,
        forwarded_prefix: bool = False,
    ) -> None:
        entries = parse_allow_list(allow)
        self._all = "*" in entries
        self._literals: set[str] = set()
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for item in entries:
            if item == "*":
                continue
            if "/" in item:
                self._networks.append(ipaddress.ip_network(item, strict=False))
            else:
                self._literals.add(str(ipaddress.ip_address(item)))
        self.trust_unix = trust_unix
        self.forwarded_host = forwarded_host
        self.forwarded_port = forwarded_port
        self.forwarded_prefix = forwarded_prefix

    def trusts(self, address: str | None) -> bool:
        """``address`` is an IP string, or ``None`` for a Unix-socket peer."""
        if address is None:
            return self.trust_unix
        if self._all or address in self._literals:
            return True
        if self._networks:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                return False
            return any(ip in network for network in self._networks)
        return False


def _client_from_chain(chain: list[str], policy: ProxyPolicy) -> str | None:
    """The right-most address that is not a trusted proxy."""
    for hop in reversed(chain):
        if not policy.trusts(hop):
            return hop
    return chain[0] if chain else None


def _forwarded_pairs(value: str) -> tuple[list[str], str | None, str | None]:
    """RFC 7239 ``Forwarded``: the ``for=`` chain, the last ``proto=``, the last element's ``host=``."""
    chain: list[str] = []
    proto = host = None
    for element in value.split(","):
        host = None  # only the nearest proxy's (the last element's) host counts
        for pair in element.split(";"):
            key, _, item = pair.strip().partition("=")
            item = item.strip().strip('"')
            key = key.strip().lower()
            if key == "for" and item:
                if item.startswith("["):  # "[2001:db8::1]:4711"
                    item = item[1:].split("]", 1)[0]
                elif item.count(":") == 1:
                    item = item.split(":", 1)[0]
                chain.append(item)
            elif key == "proto" and item:
                proto = item.lower()
            elif key == "host" and item:
                host = item
    return chain, proto, host


def _last(value: str | None) -> str | None:
    """The right-most item of a comma-separated header: the one the nearest proxy set."""
    if value is None:
        return None
    return value.rsplit(",", 1)[-1].strip(" \t") or None


class _Host(NamedTuple):
    """A validated ``X-Forwarded-Host``."""

    #: For the Host header, as sent.
    header: str
    #: For SERVER_NAME: the name, or the IPv6 address without brackets.
    name: str
    port: str | None


def _valid_port(text: str) -> bool:
    """1-65535 in plain decimal, no leading zero."""
    return text.isascii() and text.isdigit() and text[0] != "0" and len(text) <= 5 and int(text) <= 65535


def _parse_host(value: str) -> _Host | None:
    match = _HOST_RE.fullmatch(value)
    if match is None:
        return None
    name, ipv6, port = match.groups()
    if ipv6 is not None:
        try:
            ipaddress.IPv6Address(ipv6)
        except ValueError:
            return None
        name = ipv6
    if port is not None and not _valid_port(port):
        return None
    return _Host(value, name, port)


def _parse_prefix(value: str) -> str | None:
    """A validated ``X-Forwarded-Prefix`` as sent (percent-encoded), without trailing slashes.

    It must start with ``/`` and stay a path once decoded: no ``//`` at the
    start (a scheme-relative URL in a redirect), no ``.``/``..`` segments, no
    control characters, backslashes, ``?`` or ``#``. ``"/"`` means no prefix (``""``).
    """
    if _PREFIX_RE.fullmatch(value) is None or _PERCENT_RE.search(value):
        return None
    decoded = unquote_to_bytes(value).decode("latin-1")
    if decoded.startswith("//") or any(
        char in "\\?#" or ord(char) < 0x20 or ord(char) == 0x7F for char in decoded
    ):
        return None
    if any(segment in (".", "..") for segment in decoded.split("/")):
        return None
    return value.rstrip("/")


class _Forwarded(NamedTuple):
    """What a trusted proxy's headers say, validated; None: keep what the server knows."""

    client: str | None
    scheme: str | None
    host: _Host | None
    port: str | None
    #: As sent (percent-encoded), "" for "/".
    prefix: str | None


def _resolve(
    policy: ProxyPolicy,
    forwarded_for: str | None,
    proto: str | None,
    forwarded: str | None,
    x_host: str | None,
    x_port: str | None,
    x_prefix: str | None,
) -> _Forwarded:
    """The one place that decides what a trusted proxy's headers change."""
    chain: list[str] = []
    forwarded_host = None
    if forwarded is not None:
        # Forwarded gives the client and scheme only without any X-Forwarded-For/-Proto.
        forwarded_chain, forwarded_proto, forwarded_host = _forwarded_pairs(forwarded)
        if forwarded_for is None and proto is None:
            chain, proto = forwarded_chain, forwarded_proto
    if forwarded_for is not None:
        chain = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    if proto is not None:
        proto = proto.split(",")[-1].strip().lower()
    client = _client_from_chain(chain, policy) if chain else None
    scheme = proto if proto in _SCHEMES else None
    host = port = prefix = None
    if policy.forwarded_host:
        value = _last(x_host) if x_host is not None else forwarded_host
        host = _parse_host(value) if value else None
    if policy.forwarded_port:
        value = _last(x_port)
        port = value if value and _valid_port(value) else None
    if policy.forwarded_prefix:
        value = _last(x_prefix)
        prefix = _parse_prefix(value) if value else None
    return _Forwarded(client or None, scheme, host, port, prefix)


def _host_without_port(host: str) -> str:
    # "]" ends a bracketed IPv6 address that has no port.
    if ":" in host and not host.endswith("]"):
        return host.rsplit(":", 1)[0]
    return host


def _with_port(host: str, port: str, scheme: str) -> str:
    """``host`` with its port replaced by ``port``, left out when it is the scheme's default."""
    bare = _host_without_port(host)
    return bare if _DEFAULT_PORTS.get(scheme) == port else f"{bare}:{port}"


# -- WSGI --------------------------------------------------------------------------------------


def apply_proxy_headers(environ: dict[str, Any], policy: ProxyPolicy) -> None:
    """Rewrite the environ from a trusted proxy's headers.

    - ``X-Forwarded-For`` (or ``Forwarded: for=``): ``REMOTE_ADDR``, the
      right-most address that is not a trusted proxy; ``REMOTE_PORT`` ``"0"``.
    - ``X-Forwarded-Proto`` (or ``Forwarded: proto=``): ``wsgi.url_scheme``.
    - ``X-Forwarded-Host`` (or the last ``Forwarded`` element's ``host=``):
      ``HTTP_HOST``, ``SERVER_NAME``, and ``SERVER_PORT`` (its port, else the
      scheme's default).
    - ``X-Forwarded-Port``: ``SERVER_PORT`` and the port of ``HTTP_HOST``.
    - ``X-Forwarded-Prefix``: prepended to ``SCRIPT_NAME``; ``PATH_INFO`` is
      left as it is, as Werkzeug's ProxyFix does (the proxy removed the prefix
      from the path it forwarded).

    Invalid values are ignored, one header at a time.
    """
    get = environ.get
    forwarded_for = get("HTTP_X_FORWARDED_FOR")
    proto = get("HTTP_X_FORWARDED_PROTO")
    forwarded = get("HTTP_FORWARDED")
    x_host = get("HTTP_X_FORWARDED_HOST")
    x_port = get("HTTP_X_FORWARDED_PORT")
    x_prefix = get("HTTP_X_FORWARDED_PREFIX")
    if (
        forwarded_for is None
        and proto is None
        and forwarded is None
        and x_host is None
        and x_port is None
        and x_prefix is None
    ):
        return
    result = _resolve(policy, forwarded_for, proto, forwarded, x_host, x_port, x_prefix)
    if result.client is not None:
        environ["REMOTE_ADDR"] = result.client
        environ["REMOTE_PORT"] = "0"
    if result.scheme is not None:
        environ["wsgi.url_scheme"] = result.scheme
    scheme = environ["wsgi.url_scheme"]
    host = result.host
    if host is not None:
        environ["HTTP_HOST"] = host.header
        environ["SERVER_NAME"] = host.name
        environ["SERVER_PORT"] = host.port or _DEFAULT_PORTS[scheme]
    port = result.port
    if port is not None:
        environ["SERVER_PORT"] = port
        current = get("HTTP_HOST")
        if current:
            environ["HTTP_HOST"] = _with_port(current, port, scheme)
    if result.prefix:
        environ["SCRIPT_NAME"] = unquote_to_bytes(result.prefix).decode("latin-1") + get("SCRIPT_NAME", "")


# -- ASGI --------------------------------------------------------------------------------------

_NO_VALUES: list[str | None] = [None] * 6
_SCOPE_HEADERS = {
    b"x-forwarded-for": 0,
    b"x-forwarded-proto": 1,
    b"forwarded": 2,
    b"x-forwarded-host": 3,
    b"x-forwarded-port": 4,
    b"x-forwarded-prefix": 5,
}


def apply_proxy_to_scope(scope: dict[str, Any], policy: ProxyPolicy) -> None:
    """The rules of :func:`apply_proxy_headers`, for an ASGI ``http`` or ``websocket`` scope.

    ``scope["client"]`` becomes ``(address, 0)``; ``scheme`` the forwarded one
    (``ws``/``wss`` for a WebSocket); ``server`` the forwarded host and port;
    the ``host`` header is replaced (in a new ``headers`` list: the parser's
    may be shared). A prefix is prepended to ``root_path``, ``path`` and
    ``raw_path``: in ASGI the path includes the root path, which the proxy
    removed before forwarding. The scope must hold ``headers`` with lower-case
    names, as greenserve's parser gives them.
    """
    values: list[str | None] = [None] * 6
    for name, value in scope["headers"]:
        index = _SCOPE_HEADERS.get(name)
        if index is not None:
            text = value.decode("latin-1")
            previous = values[index]
            values[index] = text if previous is None else f"{previous}, {text}"
    if values == _NO_VALUES:
        return
    result = _resolve(policy, *values)
    if result.client is not None:
        scope["client"] = (result.client, 0)
    websocket = scope.get("type") == "websocket"
    if result.scheme is not None:
        scope["scheme"] = _WEBSOCKET_SCHEMES[result.scheme] if websocket else result.scheme
    scheme = scope["scheme"]
    host, port = result.host, result.port
    if host is not None or port is not None:
        if host is not None:
            name, server_port = host.name, host.port or _DEFAULT_PORTS[scheme]
        else:
            server = scope.get("server")
            name, server_port = (server[0], str(server[1])) if server else ("", "")
        scope["server"] = (name, int(port or server_port))
        headers = [item for item in scope["headers"] if item[0] != b"host"]
        current = host.header if host is not None else _header(scope["headers"], b"host")
        if current is not None:
            if port is not None:
                current = _with_port(current, port, scheme)
            headers.insert(0, (b"host", current.encode("latin-1")))
        scope["headers"] = headers
    if result.prefix:
        prefix = unquote_to_bytes(result.prefix).decode("utf-8", "replace")
        scope["root_path"] = prefix + scope.get("root_path", "")
        scope["path"] = prefix + scope["path"]
        if scope.get("raw_path") is not None:
            scope["raw_path"] = result.prefix.encode("ascii") + scope["raw_path"]


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None
