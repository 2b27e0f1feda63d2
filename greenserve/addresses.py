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


#: statsd's customary port, taken when ``--statsd-host`` names none (as gunicorn does).
STATSD_PORT = 8125


def parse_statsd_address(value: str) -> tuple[str, int] | str:
    """``--statsd-host``: ``(host, port)`` for UDP, or a Unix datagram socket's path.

    Accepts gunicorn's spellings: ``HOST:PORT``, ``HOST`` (port 8125),
    ``[IPv6]:PORT``, ``unix:PATH`` and ``unix://PATH``. Nothing is resolved
    here (the name is looked up when a process opens its socket); raises
    ValueError with the expected forms.
    """
    text = value.strip()
    expected = "expected HOST:PORT, [IPv6]:PORT or unix:PATH"
    if text.startswith("unix:"):
        path = text[len("unix://") :] if text.startswith("unix://") else text[len("unix:") :]
        if not path or "\0" in path:
            raise ValueError(f"{value!r}: no socket path after 'unix:' ({expected})")
        return path
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{value!r}: {expected}")
        port = rest[1:] if rest else str(STATSD_PORT)
    elif text.count(":") > 1:
        raise ValueError(f"{value!r}: an IPv6 address needs brackets, e.g. [::1]:8125")
    else:
        host, _, port = text.partition(":")
        port = port if ":" in text else str(STATSD_PORT)
    if not host or any(char.isspace() or not char.isprintable() for char in host):
        raise ValueError(f"{value!r}: no host name ({expected})")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            host.encode("idna")  # what the resolver will do: empty or overlong labels fail here
        except UnicodeError:
            raise ValueError(f"{value!r}: {host!r} is not a valid host name") from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r}: the port must be a number from 1 to 65535 ({expected})")
    return host, int(port)
