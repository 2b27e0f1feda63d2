"""A strict, bounded decoder for ``Transfer-Encoding: chunked`` request bodies.

Shared by both parser backends, so a chunked body is framed the same way
whichever parses the head. The rules follow RFC 9112 section 7.1 to the
letter: hex digits only (no sign, no spaces, no underscores), extensions as
``;name[=token|quoted-string]`` with optional whitespace around ``;`` and
``=``, CRLF everywhere, trailer fields well formed, bounded and dropped.
Anything else could make a proxy in front and greenserve disagree on where a
body ends (request smuggling), so it is a 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from greenserve.errors import ProtocolError
from greenserve.protocol.events import Limits

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


def _line_end(data: bytes, pos: int, limit: int) -> int:
    """Index of the CRLF ending the line at ``pos``, or -1 when it is incomplete."""
    end = data.find(b"\r\n", pos, pos + limit + 2)
    if end < 0:
        if data.find(b"\n", pos, pos + limit + 2) >= 0:
            raise ProtocolError(400, "bare LF in chunked framing")
        if len(data) - pos > limit + 1:
            raise ProtocolError(400, "chunk line too long")
    return end


class ChunkedDecoder:
    """Consumes chunked framing from a buffer and emits the body bytes."""

    __slots__ = ("_fields", "_limits", "_remaining", "_state", "_total", "done")

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._state = _SIZE
        self._remaining = 0
        self._total = 0
        self._fields = 0
        #: The last chunk and the trailer section have been read.
        self.done = False

    def decode(self, data: bytes, pos: int, emit: Callable[[bytes], None]) -> int:
        """Consume ``data[pos:]`` as far as possible; returns the new position.

        Stops early when a line is incomplete (the caller keeps the rest for
        the next call) or when the body is complete (:attr:`done`).
        """
        size = len(data)
        while pos < size:
            state = self._state
            if state == _DATA:
                take = min(self._remaining, size - pos)
                emit(data[pos : pos + take])
                pos += take
                self._remaining -= take
                if not self._remaining:
                    self._state = _DATA_END
            elif state == _SIZE:
                end = _line_end(data, pos, MAX_CHUNK_LINE)
                if end < 0:
                    return pos
                line = data[pos:end]
                pos = end + 2
                match = _CHUNK_LINE.fullmatch(line)
                if match is None:
                    raise ProtocolError(400, f"invalid chunk size line {line[:40]!r}")
                chunk = int(match.group(1), 16)
                if chunk == 0:
                    self._state = _TRAILER
                    continue
                self._total += chunk
                limit = self._limits.body_size
                if limit and self._total > limit:
                    raise ProtocolError(413, f"chunked body exceeds {limit} bytes")
                self._remaining = chunk
                self._state = _DATA
            elif state == _DATA_END:
                if size - pos < 2:
                    if data[pos] != 13:
                        raise ProtocolError(400, "chunk data not followed by CRLF")
                    return pos
                if data[pos] != 13 or data[pos + 1] != 10:
                    raise ProtocolError(400, "chunk data not followed by CRLF")
                pos += 2
                self._state = _SIZE
            else:  # trailer section
                end = _line_end(data, pos, self._limits.field_size)
                if end < 0:
                    return pos
                line = data[pos:end]
                pos = end + 2
                if not line:
                    self._state = _DONE
                    self.done = True
                    return pos
                self._fields += 1
                if self._fields > self._limits.fields:
                    raise ProtocolError(431, "too many trailer fields")
                if _FIELD_LINE.fullmatch(line) is None:
                    raise ProtocolError(400, f"invalid trailer field {line[:40]!r}")
        return pos
