"""WebSocket rules that do not depend on sockets: the handshake and bounded compression.

The frame protocol itself is wsproto's (pure Python, sans-IO). What greenserve
adds, testable on bytes:

- :func:`handshake_request` turns a parsed upgrade request back into the bytes
  wsproto reads, so its handshake checks (version, key, ``Connection``) apply;
  :class:`HandshakeError` is the refusal when they fail (400, or 426 and the
  version greenserve speaks), the same for WSGI and ASGI applications;
- :class:`BoundedDeflate`, permessage-deflate (RFC 7692) whose decompression
  stops at the largest message the server accepts: a compressed message is
  never inflated beyond ``--ws-max-size``, however well it compresses (a few
  kilobytes of zeros inflate to gigabytes).
"""

from __future__ import annotations

import zlib
from typing import Any

from wsproto.events import RejectConnection
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason

from greenserve.protocol.events import Request

#: RFC 6455 close codes greenserve sends.
NORMAL = 1000
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
ABNORMAL = 1006  # never sent: reported when the connection ended without a close frame
INVALID_DATA = 1007
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011


def handshake_request(request: Request) -> bytes:
    """The request head as wsproto reads it (header names as the parser gave them)."""
    lines = [b"GET " + request.target + b" HTTP/1.1\r\n"]
    lines += [name + b": " + value + b"\r\n" for name, value in request.headers]
    lines.append(b"\r\n")
    return b"".join(lines)


class HandshakeError(ValueError):
    """The upgrade request is not a valid WebSocket handshake: the client's mistake, answered
    with ``status`` (400; 426 for a version other than 13) and ``headers``.

    RFC 6455 4.2.2: a refused version is answered with the version the server
    speaks (``Sec-WebSocket-Version: 13``), so a client can retry with it.
    """

    BODY = b"Invalid WebSocket handshake\n"

    def __init__(self, message: str, status: int = 400, headers: list[tuple[bytes, bytes]] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = list(headers or [])

    @classmethod
    def from_wsproto(cls, exc: Exception) -> HandshakeError:
        """From wsproto's refusal of a handshake (its hint carries the status and headers)."""
        hint = getattr(exc, "event_hint", None)
        if not isinstance(hint, RejectConnection):
            return cls(str(exc) or "not a WebSocket handshake")
        headers = list(hint.headers)
        if hint.status_code == 426:
            headers.append((b"upgrade", b"websocket"))  # RFC 9110 15.5.22: a 426 names the protocol
        return cls(str(exc) or "not a WebSocket handshake", hint.status_code, headers)

    def response(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The plain HTTP refusal: status, headers (ASGI-style byte pairs) and body."""
        return self.status, [(b"content-type", b"text/plain"), *self.headers], self.BODY


class BoundedDeflate(PerMessageDeflate):
    """permessage-deflate that refuses to inflate a message beyond ``max_size`` bytes (0: unbounded).

    wsproto turns the refusal into a close with 1009 (Message Too Big), as it
    does any other frame error, and no byte beyond the limit is ever produced.
    """

    def __init__(self, max_size: int, **options: Any) -> None:
        super().__init__(**options)
        self.max_size = max_size
        #: Decompressed bytes of the current inbound message so far.
        self._inflated = 0

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        decompressor = self._decompressor
        assert decompressor is not None
        limit = self.max_size
        try:
            if not limit:
                out = decompressor.decompress(data)
            else:
                room = limit - self._inflated
                # One byte more than the room: to know the limit is crossed without going further.
                out = decompressor.decompress(data, room + 1)
                if len(out) > room or decompressor.unconsumed_tail:
                    return CloseReason.MESSAGE_TOO_BIG
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inflated += len(out)
        return out

    def frame_inbound_payload_data(self, proto: Any, data: bytes) -> bytes | CloseReason:
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        return self._inflate(bytes(data))

    def frame_inbound_complete(self, proto: Any, fin: bool) -> bytes | CloseReason | None:
        if not fin:
            return None
        if not self._inbound_is_compressible or not self._inbound_compressed:
            self._inbound_compressed = None
            return None
        out = self._inflate(b"\x00\x00\xff\xff")
        if isinstance(out, CloseReason):
            return out
        decompressor = self._decompressor
        assert decompressor is not None
        tail = decompressor.flush()
        if tail:
            if self.max_size and self._inflated + len(tail) > self.max_size:
                return CloseReason.MESSAGE_TOO_BIG
            out += tail
        client = proto.client
        if self.server_no_context_takeover if client else self.client_no_context_takeover:
            self._decompressor = None
        self._inbound_compressed = None
        self._inflated = 0
        return out
