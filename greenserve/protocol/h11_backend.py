"""The reference head parser: h11.

h11 validates the request line and field lines against RFC 9110/9112's
grammar. Where it is lenient (it accepts bare LF line ends and unfolds
obs-fold lines), :func:`~greenserve.protocol.rules.check_raw_head` refuses
first. Bodies are framed by :class:`~greenserve.protocol.parser.RequestParser`
for both backends, so h11's own body reader (which accepts whitespace after a
chunk size) is never used.

Once the grammar has passed, h11 applies a few framing rules of its own
(only ``Transfer-Encoding: chunked``, Content-Length lists, the Host count).
Those decisions belong to :func:`~greenserve.protocol.rules.finish_head`, the
same for both backends: when h11 refuses a head, it reads it again with those
fields renamed, so that only a grammar error can still fail.

The httptools backend also hands this parser every head that llhttp refuses.

This is the only module that imports h11.
"""

from __future__ import annotations

import h11

from greenserve.errors import ProtocolError
from greenserve.protocol.events import Limits, Request
from greenserve.protocol.rules import check_raw_head, finish_head


class H11HeadParser:
    """See :class:`greenserve.protocol.parser.HeadParser`."""

    name = "h11"

    __slots__ = ("limits",)

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def parse(self, head: bytes) -> Request:
        check_raw_head(head, True)
        try:
            event = _read(head)
        except h11.RemoteProtocolError as exc:
            try:
                event = _read(_without_ruled_names(head))
            except h11.RemoteProtocolError:
                # Still refused: the grammar is wrong (h11 checks it first, so
                # ``exc`` already said what is wrong with it).
                raise ProtocolError(431 if exc.error_status_hint == 431 else 400, str(exc)) from None
        # h11 merges repeated Content-Length fields and list forms ("5, 5")
        # into one value; the rules must see the fields exactly as sent. h11
        # has validated every line, so splitting the raw head is safe.
        headers = []
        for line in head[:-4].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            headers.append((name.lower(), value.strip(b" \t")))  # as the httptools backend
        return finish_head(
            event.method.decode("ascii"),  # a token: h11's grammar
            event.target,
            event.http_version.decode("ascii"),
            headers,
            self.limits,
        )


#: Fields whose rules h11 applies after the grammar, and finish_head decides instead.
_RULED_NAMES = frozenset({b"content-length", b"transfer-encoding", b"host"})


def _read(head: bytes) -> h11.Request:
    """h11's Request event for a complete head; raises h11.RemoteProtocolError."""
    connection = h11.Connection(h11.SERVER, max_incomplete_event_size=len(head) + 1)
    connection.receive_data(head)
    event = connection.next_event()
    if not isinstance(event, h11.Request):  # pragma: no cover - a whole head always parses
        raise h11.RemoteProtocolError("incomplete request head", 400)
    return event


def _without_ruled_names(head: bytes) -> bytes:
    """``head`` with the names of :data:`_RULED_NAMES` fields replaced by ``x...x``, and one Host.

    The grammar of every line is unchanged (a run of ``x`` is a token of the
    same length), and exactly one ``Host`` line is added (h11 wants one on
    HTTP/1.1), so h11 then refuses the head only for its grammar.
    """
    lines = head.split(b"\r\n")
    for index in range(1, len(lines)):
        name, colon, rest = lines[index].partition(b":")
        if colon and name.lower() in _RULED_NAMES:
            lines[index] = b"x" * len(name) + colon + rest
    lines.insert(1, b"Host: x")
    return b"\r\n".join(lines)
