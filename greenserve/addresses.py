"""Lists of IP addresses and networks: ``--forwarded-allow-ips``, ``--proxy-allow-from``.

A leaf module, like errors.py: the configuration validates the lists with it
(in the master, which must not import the protocol layer) and the protocol
layer's trust decisions parse them with it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


def parse_allow_list(items: Iterable[str]) -> tuple[str, ...]:
    """Validated allow-list entries: IP addresses, networks (``10.0.0.0/8``) or ``*``.

    Raises ValueError naming the first bad entry; used by the configuration so
    that a typo stops greenserve at startup instead of in every worker.
    """
    entries = tuple(item.strip() for item in items if item.strip())
    for item in entries:
        if item == "*":
            continue
        try:
            if "/" in item:
                ipaddress.ip_network(item, strict=False)
            else:
                ipaddress.ip_address(item)
        except ValueError:
            raise ValueError(
                f"{item!r} is not an IP address, a network such as 10.0.0.0/8 or 2001:db8::/32, or '*'"
            ) from None
    return entries


__all__ = ["parse_allow_list"]
