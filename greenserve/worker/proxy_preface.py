"""``--proxy-protocol``: the preamble a TCP load balancer sends before the client's bytes.

A *preface* in the sense of :mod:`greenserve.worker.connection`: it runs on a
new connection's first bytes, before HTTP/1.1 (and before the TLS handshake
on a TLS listener). The parsing itself is sans-IO
(:mod:`greenserve.protocol.proxy_protocol`); this module reads the bytes,
bounded by ``--header-timeout``, and applies what the preamble says to the
connection:

- a peer in ``--proxy-allow-from`` must send a preamble: its addresses become
  the connection's client (``REMOTE_ADDR``, ASGI ``client``) and server
  address, its TLS flag the scheme, and forwarded headers are then trusted
  only if that *client* is in ``--forwarded-allow-ips``;
- any other peer must not: a preamble from it (someone trying to choose their
  own address) closes the connection, as does a malformed one, each with one
  log line.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from greenserve.protocol.proxy import ProxyPolicy
from greenserve.protocol.proxy_protocol import (
    Detection,
    PreambleReader,
    ProxyHeader,
    ProxyProtocolError,
    detect,
)

if TYPE_CHECKING:
    from greenserve.worker.connection import Connection

log = logging.getLogger("greenserve.error")

#: Bytes that decide whether a connection starts with a preamble (the v2 signature's length).
_SIGNATURE = 12


class ProxyProtocolPreface:
    """Reads and applies a connection's PROXY protocol preamble (one instance per worker)."""

    def __init__(self, mode: str, allow: ProxyPolicy, forwarded: ProxyPolicy | None) -> None:
        #: ``v1``, ``v2`` or ``auto``.
        self.mode = mode
        #: Who must send a preamble (``--proxy-allow-from``).
        self.allow = allow
        #: Whose forwarded headers apply (``--forwarded-allow-ips``), None with --no-proxy-headers.
        self.forwarded = forwarded

    def __call__(self, conn: Connection, data: bytes) -> bytes | None:
        """The bytes after the preamble for HTTP/1.1; None when the connection must close.

        ``data`` is what was received so far (possibly nothing, on a TLS
        listener: then at most the preamble is read, so the handshake's bytes
        stay in the socket for the TLS layer).
        """
        peer = conn.remote[0] or None  # None: a Unix-socket peer
        bounded = conn.TLS
        try:
            if not self.allow.trusts(peer):
                return self._refuse_preamble(conn, data, bounded)
            reader = PreambleReader(self.mode)
            header = reader.feed(data) if data else None
            while header is None:
                more = conn.recv_raw(reader.max_read() if bounded else 0)
                if not more:
                    reader.feed_eof()
                header = reader.feed(more)
        except ProxyProtocolError as exc:
            where = peer or "a Unix-socket peer"
            log.info("PROXY protocol: closing the connection from %s: %s", where, exc.reason)
            return None
        except TimeoutError:
            log.info("PROXY protocol: %s did not send its header in time", peer or "a Unix-socket peer")
            return None
        if bounded and reader.rest:  # cannot happen when reading at most max_read()
            log.error("PROXY protocol: bytes after the header before the TLS handshake; closing")
            return None
        self._apply(conn, header)
        return reader.rest

    def _refuse_preamble(self, conn: Connection, data: bytes, bounded: bool) -> bytes | None:
        """A peer that may not send a preamble: make sure it did not; give its bytes back to HTTP."""
        if bounded:
            return data  # TLS: the client's first bytes are a ClientHello, never a preamble
        while detect(data) is Detection.NEED_MORE and len(data) < _SIGNATURE:
            more = conn.recv_raw(0)
            if not more:
                break
            data += more
        if detect(data) in (Detection.V1, Detection.V2):
            peer = conn.remote[0] or "a Unix-socket peer"
            log.info("PROXY protocol: closing the connection from %s, not in --proxy-allow-from", peer)
            return None
        return data

    def _apply(self, conn: Connection, header: ProxyHeader) -> None:
        remote = header.remote
        if remote is not None:
            conn.set_remote(remote)
        base = dict(conn.base)  # this connection's own copy: the listener's is shared
        server = header.server
        if server is not None:
            conn.server_name = None
            base["SERVER_NAME"], base["SERVER_PORT"] = server
        scheme = header.scheme
        if scheme is not None:
            base["wsgi.url_scheme"] = scheme
        base["greenserve.proxy_protocol"] = header
        conn.base = base
        conn.proxy_header = header
        client = conn.remote[0] or None
        forwarded = self.forwarded
        conn.proxy = forwarded if forwarded is not None and forwarded.trusts(client) else None
