"""Trusted reverse-proxy headers: client address and scheme behind a proxy.

Only connections from addresses in ``--forwarded-allow-ips`` (and Unix
sockets, which only local processes can reach) may set ``REMOTE_ADDR`` and
``wsgi.url_scheme`` through ``X-Forwarded-For``/``X-Forwarded-Proto`` or
``Forwarded``; from anyone else those headers stay plain request headers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

_SCHEMES = frozenset(("http", "https"))


class ProxyPolicy:
    """Which peers are trusted proxies. Built once per worker."""

    __slots__ = ("_all", "_literals", "_networks")

    def __init__(self, allow: Iterable[str]) -> None:
        allow = [item.strip() for item in allow if item.strip()]
        self._all = "*" in allow
        self._literals: set[str] = set()
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for item in allow:
            if item == "*":
                continue
            if "/" in item:
                self._networks.append(ipaddress.ip_network(item, strict=False))
            else:
                self._literals.add(str(ipaddress.ip_address(item)))

    def trusts(self, address: str | None) -> bool:
        """``address`` is an IP string, or ``None`` for a Unix-socket peer."""
        if address is None or self._all:
            return True
        if address in self._literals:
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


def _forwarded_pairs(value: str) -> tuple[list[str], str | None]:
    """RFC 7239 ``Forwarded``: the ``for=`` chain and the last ``proto=``."""
    chain: list[str] = []
    proto = None
    for element in value.split(","):
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
    return chain, proto


def apply_proxy_headers(environ: dict[str, Any], policy: ProxyPolicy) -> None:
    """Rewrite ``REMOTE_ADDR``/``wsgi.url_scheme`` from a trusted proxy's headers."""
    forwarded_for = environ.get("HTTP_X_FORWARDED_FOR")
    proto = environ.get("HTTP_X_FORWARDED_PROTO")
    chain: list[str] = []
    if forwarded_for is not None:
        chain = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    if proto is not None:
        proto = proto.split(",")[-1].strip().lower()
    if forwarded_for is None and proto is None:
        forwarded = environ.get("HTTP_FORWARDED")
        if forwarded is None:
            return
        chain, proto = _forwarded_pairs(forwarded)
    if chain:
        client = _client_from_chain(chain, policy)
        if client:
            environ["REMOTE_ADDR"] = client
            environ["REMOTE_PORT"] = "0"
    if proto in _SCHEMES:
        environ["wsgi.url_scheme"] = proto
