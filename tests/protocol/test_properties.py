"""Property tests: the parser never raises, and both backends agree with a model on valid input."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from greenserve.errors import ProtocolError
from greenserve.protocol.events import END, Request
from greenserve.protocol.parser import new_parser

from .helpers import BACKENDS, normalise

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,  # no .hypothesis/ directory in the repository
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Statuses the parser may answer.
STATUSES = {400, 405, 413, 414, 431, 501, 505}

TCHAR = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#: field-vchar: VCHAR and obs-text.
VCHAR = bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100))
PATH_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@%/"
SPECIAL_NAMES = {"host", "content-length", "transfer-encoding", "connection", "expect", "upgrade"}
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    pieces = []
    start = 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return pieces


def drive(backend: str, pieces: list[bytes], eof: bool) -> list[Any]:
    parser = new_parser(backend)
    for piece in pieces:
        parser.feed(piece)
    if eof:
        parser.feed_eof()
    return list(parser.events)


# -- strategies ------------------------------------------------------------------------

field_value = st.one_of(
    st.just(b""),
    st.builds(
        lambda first, middle, last: first + middle + last,
        st.sampled_from([bytes([b]) for b in VCHAR]),
        st.lists(st.sampled_from([bytes([b]) for b in VCHAR] + [b" ", b"\t"]), max_size=12).map(b"".join),
        st.sampled_from([b""] + [bytes([b]) for b in VCHAR]),
    ),
)
field_name = st.one_of(
    st.text(alphabet=TCHAR, min_size=1, max_size=16),
    st.sampled_from(["Content-Type", "Cookie", "Accept", "Keep-Alive", "Proxy-Connection", "TE", "Trailer"]),
).filter(lambda name: name.lower() not in SPECIAL_NAMES)
ows = st.sampled_from([b"", b" ", b"  ", b"\t", b" \t"])


@st.composite
def targets(draw: st.DrawFn, method: str) -> bytes:
    if method == "OPTIONS" and draw(st.booleans()):
        return b"*"
    path = "/" + draw(st.text(alphabet=PATH_CHARS, max_size=20))
    if draw(st.booleans()):
        path += "?" + draw(st.text(alphabet=PATH_CHARS + "?", max_size=20))
    if draw(st.integers(0, 9)) == 0:
        path = "http://example.com" + path
    return path.encode()


@st.composite
def chunked_bodies(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """(framing, body)."""
    chunks = draw(st.lists(st.binary(min_size=1, max_size=20), max_size=4))
    out = []
    for data in chunks:
        size = draw(st.sampled_from(["%x", "%X", "0%x", "000%X"])) % len(data)
        ext = draw(st.sampled_from(["", ";a", ";a=b", ' ; q="x;y\\""', "\t;k\t=\tv;z"]))
        out.append(size.encode() + ext.encode() + b"\r\n" + data + b"\r\n")
    out.append(draw(st.sampled_from([b"0", b"000", b"0;last"])) + b"\r\n")
    for name, value in draw(st.lists(st.tuples(field_name, field_value), max_size=2)):
        out.append(name.encode() + b":" + draw(ows) + value + b"\r\n")
    out.append(b"\r\n")
    return b"".join(out), b"".join(chunks)


@st.composite
def valid_requests(draw: st.DrawFn) -> tuple[bytes, list[Any]]:
    """A valid request and the events a correct parser produces for it."""
    method = draw(st.sampled_from(METHODS))
    target = draw(targets(method))
    version = draw(st.sampled_from(["1.1", "1.1", "1.0"]))
    fields: list[tuple[bytes, bytes, bytes]] = [
        (name.encode(), draw(ows), value)
        for name, value in draw(st.lists(st.tuples(field_name, field_value), max_size=5))
    ]

    def insert(name: bytes, value: bytes) -> None:
        fields.insert(draw(st.integers(0, len(fields))), (name, draw(ows), value))

    if version == "1.1" or draw(st.booleans()):
        insert(b"Host", draw(st.sampled_from([b"example.com", b"localhost:8000", b"[::1]:80", b""])))
    connection = draw(st.sampled_from([None, b"close", b"keep-alive", b"Keep-Alive, foo", b"foo"]))
    if connection is not None:
        insert(b"Connection", connection)
    tokens = [token.strip().lower() for token in (connection or b"").split(b",")]
    keep_alive = b"close" not in tokens if version == "1.1" else b"keep-alive" in tokens

    kind = draw(st.sampled_from(["none", "length", "chunked"] if version == "1.1" else ["none", "length"]))
    content_length = None
    if kind == "length":
        payload = draw(st.binary(max_size=40))
        framing = payload
        content_length = len(payload)
        insert(b"Content-Length", str(content_length).encode())
    elif kind == "chunked":
        framing, payload = draw(chunked_bodies())
        insert(b"Transfer-Encoding", b"chunked")
    else:
        framing = payload = b""

    head = b"%s %s HTTP/%s\r\n" % (method.encode(), target, version.encode())
    head += b"".join(name + b":" + space + value + b"\r\n" for name, space, value in fields) + b"\r\n"
    request = {
        "request": {
            "method": method,
            "target": target.decode("latin-1"),
            "version": version,
            "headers": [  # the parsers lower-case names
                [name.decode("latin-1").lower(), value.decode("latin-1")] for name, _, value in fields
            ],
            "keep_alive": keep_alive,
            "content_length": content_length,
            "chunked": kind == "chunked",
            "expect_continue": False,
            "upgrade": None,
        }
    }
    events = [request, *([{"body": payload.decode("latin-1")}] if payload else []), "end"]
    return head + framing, events


@st.composite
def pipelines(draw: st.DrawFn) -> tuple[bytes, list[Any]]:
    requests = draw(st.lists(valid_requests(), min_size=1, max_size=3))
    data = b"".join(raw for raw, _ in requests)
    events = [event for _, expected in requests for event in expected]
    return data, events


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid pipeline with a few bytes inserted, deleted or replaced."""
    data = bytearray(draw(pipelines())[0])
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = draw(st.sampled_from([0, 9, 10, 13, 32, 34, 44, 58, 59, 127, 255, *b"0aZ"]))
        if action == "insert":
            data.insert(where, byte)
        elif where < len(data):
            if action == "delete":
                del data[where]
            else:
                data[where] = byte
    return bytes(data)


cuts = st.lists(st.integers(0, 600), max_size=6)

#: Pieces of request lines and field lines where the two head parsers' own rules differ
#: (methods llhttp does not know, versions, OWS, transfer codings, Content-Length forms).
LINE_PARTS = [
    *(b"GET", b"get", b"Post", b"FOO", b"PRI", b"CONNECT", b"OPTIONS", b"BASELINE-CONTROL", b"M-SEARCH"),
    *(b"SETUP", b"G(T", b"", b"/", b"*", b"/a?b", b"http://x/", b"x:1", b"HTTP/1.1", b"HTTP/1.0"),
    *(b"HTTP/1.2", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/3.0", b"HTTP/1.x", b"http/1.1", b"HTTP/11"),
]
NAMES = [b"Host", b"host", b"Content-Length", b"Transfer-Encoding", b"Connection", b"Expect", b"Upgrade"]
VALUES = [
    *(b"a", b"", b"5", b"0", b"5 5", b"+5", b"5, 5", b"chunked", b"Chunked", b"gzip, chunked"),
    *(b"chunked, gzip", b"gzip,\tchunked"),
    *(b"xchunked", b"chunked;a=1", b'gzip;a="x,y", chunked', b", chunked", b"chunked,", b"close", b"upgrade"),
    *(b"keep-alive ,  close", b"100-continue", b"websocket", b"a b", b"\xff", b"example.com:80", b"[::1]"),
]


@st.composite
def tricky_heads(draw: st.DrawFn) -> bytes:
    part = st.sampled_from(LINE_PARTS)
    line = draw(part) + draw(st.sampled_from([b" ", b"  "])) + draw(part) + b" " + draw(part)
    fields = b"".join(
        draw(st.sampled_from([*NAMES, b"Host ", b""]))
        + b":"
        + draw(ows)
        + draw(st.sampled_from(VALUES))
        + draw(st.sampled_from([b"", b" ", b"\t", b" \t "]))
        + b"\r\n"
        for _ in range(draw(st.integers(0, 4)))
    )
    return line + b"\r\n" + fields + b"\r\n" + draw(st.sampled_from([b"", b"0\r\n\r\n", b"hello"]))


# -- properties ------------------------------------------------------------------------


def check_event_stream(events: list[Any]) -> None:
    """Only the documented event types; an error is the last event; END closes each request."""
    in_body = False
    for index, event in enumerate(events):
        if isinstance(event, ProtocolError):
            assert event.status in STATUSES, event
            assert index == len(events) - 1, events
        elif isinstance(event, Request):
            assert not in_body
            in_body = True
        elif event is END:
            assert in_body
            in_body = False
        else:
            assert isinstance(event, bytes) and event, event
            assert in_body


@SETTINGS
@given(data=st.one_of(st.binary(max_size=300), mutated()), cuts=cuts, eof=st.booleans())
def test_feed_never_raises(data: bytes, cuts: list[int], eof: bool) -> None:
    """Arbitrary bytes in arbitrary pieces: only well-formed event streams, never an exception.

    And however the bytes are split, the outcome is the same as when they arrive at once.
    """
    pieces = split(data, cuts)
    outcomes = {}
    for backend in BACKENDS:
        events = drive(backend, pieces, eof)
        check_event_stream(events)
        outcomes[backend] = normalise(events)
    for backend in BACKENDS:
        whole = normalise(drive(backend, [data], eof))
        assert outcomes[backend] == whole, f"{backend}: the split changed the outcome"


@SETTINGS
@given(case=pipelines(), cuts=cuts)
def test_valid_requests_match_the_model_on_both_backends(
    case: tuple[bytes, list[Any]], cuts: list[int]
) -> None:
    data, expected = case
    pieces = split(data, cuts)
    for backend in BACKENDS:
        assert normalise(drive(backend, pieces, False)) == expected, backend
        assert normalise(drive(backend, pieces, True)) == expected, backend


@settings(
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.one_of(tricky_heads(), mutated()), eof=st.booleans())
def test_both_backends_give_the_same_answer(data: bytes, eof: bool) -> None:
    """Whichever parser reads a head, the application or the client sees the same thing."""
    h11_events, httptools_events = (normalise(drive(backend, [data], eof)) for backend in BACKENDS)
    assert h11_events == httptools_events
