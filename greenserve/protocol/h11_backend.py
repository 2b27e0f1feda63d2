"""The reference head parser: h11.

h11 validates the request line and field lines against RFC 9110/9112's
grammar. Where it is lenient (it accepts bare LF line ends and unfolds
obs-fold lines), :func:`~greenserve.protocol.rules.check_raw_head` refuses
first. Bodies are framed by :class:`~greenserve.protocol.parser.RequestParser`
for both backends, so h11's own body reader (which accepts whitespace after a
chunk size) is never used.

This is the only module that imports h11.
"""

from __future__ import annotations

import h11
from zope.interface import implementer

from greenserve.errors import ProtocolError
from greenserve.interfaces import IHeadParser
from greenserve.protocol.events import Limits, Request
from greenserve.protocol.rules import check_raw_head, finish_head


@implementer(IHeadParser)
class H11HeadParser:
    """See :class:`greenserve.protocol.parser.HeadParser`."""

    name = "h11"

    __slots__ = ("limits",)

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    def parse(self, head: bytes) -> Request:
        check_raw_head(head, True)
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=len(head) + 1)
        try:
            connection.receive_data(head)
            event = connection.next_event()
        except h11.RemoteProtocolError as exc:
            raise ProtocolError(431 if exc.error_status_hint == 431 else 400, str(exc)) from None
        if not isinstance(event, h11.Request):  # pragma: no cover - a whole head always parses
            raise ProtocolError(400, "incomplete request head")
        # h11 merges repeated Content-Length fields and list forms ("5, 5")
        # into one value; the rules must see the fields exactly as sent. h11
        # has validated every line, so splitting the raw head is safe.
        headers = []
        for line in head[:-4].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            headers.append((name.lower(), value.strip(b" \t")))  # as the httptools backend
        return finish_head(
            event.method.decode("ascii"),
            event.target,
            event.http_version.decode("ascii"),
            headers,
            self.limits,
        )
