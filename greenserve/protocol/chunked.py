"""A strict, bounded decoder for ``Transfer-Encoding: chunked`` request bodies.

Used by the h11 backend: h11 tolerates whitespace after the chunk size and
bare CR in chunk extensions, and either is enough to make a proxy in front
and greenserve disagree on where a body ends (request smuggling). The rules
here follow RFC 9112 section 7.1 to the letter: hex digits only, extensions
as ``;name[=token|quoted-string]`` with optional whitespace around ``;`` and
``=``, CRLF everywhere, trailer fields well formed, bounded and dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from greenserve.errors import ProtocolError
from greenserve.protocol.parser import Limits

_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t !-~\x80-\xff])*"'
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,16})((?:[ \t]*;[ \t]*"
    + _TOKEN
    + rb"(?:[ \t]*=[ \t]*(?:"
    + _TOKEN
    + rb"|"
    + _QUOTED
    + rb"))?)*)"
)
_FIELD_LINE = re.compile(rb"(" + _TOKEN + rb"):[ \t]*([\t\x20-\x7e\x80-\xff]*)")

#: Longest chunk-size line (with extensions) accepted.
MAX_CHUNK_LINE = 4096

_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


def _find_line(buf: bytearray, limit: int) -> int:
    """Index of the CRLF ending the first line, or -1 when incomplete."""
    end = buf.find(b"\r\n", 0, limit + 2)
    if end < 0:
        lf = buf.find(b"\n", 0, limit + 2)
        if lf >= 0:
            raise ProtocolError(400, "bare LF in chunked framing")
        if len(buf) > limit + 1:
            raise ProtocolError(400, "chunk line too long")
        return -1
    return end


class ChunkedDecoder:
    """Feed it the connection buffer; it consumes framing and emits body bytes."""

    __slots__ = ("_fields", "_limits", "_remaining", "_state", "_total")

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._state = _SIZE
        self._remaining = 0
        self._total = 0
        self._fields = 0

    def decode(self, buf: bytearray, emit: Callable[[bytes], None]) -> bool:
        """Consume what ``buf`` holds; ``True`` once the final chunk and trailers are read."""
        while True:
            state = self._state
            if state == _DATA:
                if not buf:
                    return False
                size = min(self._remaining, len(buf))
                emit(bytes(buf[:size]))
                del buf[:size]
                self._remaining -= size
                if not self._remaining:
                    self._state = _DATA_END
            elif state == _SIZE:
                end = _find_line(buf, MAX_CHUNK_LINE)
                if end < 0:
                    return False
                line = bytes(buf[:end])
                del buf[: end + 2]
                match = _CHUNK_LINE.fullmatch(line)
                if match is None:
                    raise ProtocolError(400, f"invalid chunk size line {line[:40]!r}")
                size = int(match.group(1), 16)
                if size == 0:
                    self._state = _TRAILER
                    continue
                self._total += size
                limit = self._limits.body_size
                if limit and self._total > limit:
                    raise ProtocolError(413, f"chunked body exceeds {limit} bytes")
                self._remaining = size
                self._state = _DATA
            elif state == _DATA_END:
                if len(buf) < 2:
                    if buf and buf[0] != 13:
                        raise ProtocolError(400, "chunk data not followed by CRLF")
                    return False
                if buf[0] != 13 or buf[1] != 10:
                    raise ProtocolError(400, "chunk data not followed by CRLF")
                del buf[:2]
                self._state = _SIZE
            elif state == _TRAILER:
                end = _find_line(buf, self._limits.field_size)
                if end < 0:
                    return False
                line = bytes(buf[:end])
                del buf[: end + 2]
                if not line:
                    self._state = _DONE
                    return True
                self._fields += 1
                if self._fields > self._limits.fields:
                    raise ProtocolError(431, "too many trailer fields")
                if _FIELD_LINE.fullmatch(line) is None:
                    raise ProtocolError(400, f"invalid trailer field {line[:40]!r}")
            else:
                return True
