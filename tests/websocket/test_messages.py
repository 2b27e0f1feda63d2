"""Messages: echo, empty and large messages, ordering, fragmentation, UTF-8, pings.

Every test runs against the WSGI and the ASGI echo application (the
``app_kind`` parameter), driven by the ``websockets`` client or by the raw
client of raw.py, which writes every frame byte itself.
"""

from __future__ import annotations

import time

import pytest
from wsproto.frame_protocol import Opcode

from tests.websocket.conftest import ws_connect
from tests.websocket.raw import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, RawClient, fragments, frame


def test_text_and_binary_echo(server):
    with ws_connect(server) as conn:
        conn.send("héllo wörld ✓")
        assert conn.recv(timeout=5) == "héllo wörld ✓"  # a str: still a text message
        conn.send(b"\x00\xff\x80binary")
        assert conn.recv(timeout=5) == b"\x00\xff\x80binary"  # bytes: still binary


def test_empty_messages(server):
    with ws_connect(server) as conn:
        conn.send("")
        assert conn.recv(timeout=5) == ""
        conn.send(b"")
        assert conn.recv(timeout=5) == b""
    with RawClient(server.address) as raw:  # an empty message in empty fragments
        for data in fragments(TEXT, [b"", b"", b""]):
            raw.send(data)
        assert raw.message() == ""


def test_one_mebibyte_messages(server):
    text = "ü" * (512 * 1024)  # 1 MiB of UTF-8
    binary = bytes(range(256)) * 4096  # 1 MiB
    with ws_connect(server) as conn:
        conn.send(binary)
        assert conn.recv(timeout=10) == binary
        conn.send(text)
        assert conn.recv(timeout=10) == text


def test_many_messages_keep_their_order(server):
    messages = [f"message {i}" if i % 2 else f"binary {i}".encode() * (i % 50) for i in range(500)]
    with ws_connect(server) as conn:
        for message in messages:
            conn.send(message)
        assert [conn.recv(timeout=5) for _ in messages] == messages


def test_message_in_one_byte_fragments(server):
    text = "fragmented é ✓ 😀"
    data = text.encode()
    with RawClient(server.address) as raw:
        # One byte per frame: a code point's bytes arrive in different frames.
        for part in fragments(TEXT, [data[i : i + 1] for i in range(len(data))]):
            raw.send(part)
        assert raw.message() == text
        binary = bytes(range(256)) * 400
        raw.send(b"".join(fragments(BINARY, [binary[i : i + 1000] for i in range(0, len(binary), 1000)])))
        assert raw.message() == binary


def test_frames_split_across_tcp_writes_at_every_offset(server):
    wire = b"".join(fragments(TEXT, ["hé".encode(), b"llo"]))
    with RawClient(server.address) as raw:
        for offset in range(1, len(wire)):
            raw.send(wire[:offset])
            time.sleep(0.002)  # let the first write reach the server alone
            raw.send(wire[offset:])
            assert raw.message() == "héllo", offset


def split_pongs(raw: RawClient, count: int) -> tuple[list[bytes], list[str | bytes]]:
    """The next ``count`` frames or messages: pongs apart (the echo may come first), messages in order."""
    pongs: list[bytes] = []
    messages: list[str | bytes] = []
    for _ in range(count):
        received = raw.receive()
        assert received is not None and received.opcode is not Opcode.CLOSE, received
        (pongs if received.opcode is Opcode.PONG else messages).append(received.data)  # type: ignore[arg-type]
    return pongs, messages


def test_whole_frames_and_other_frames_mixed_in_one_write(server):
    """Whole small frames (greenserve decodes those itself) and frames wsproto reads, back to back."""
    big = bytes(range(256)) * 300  # 76,800 bytes: a 64-bit length, above the 64 KiB shortcut
    medium = "m" * 200  # a 16-bit length
    wire = b"".join(
        [
            frame(TEXT, b"a"),
            frame(PING, b"p1"),
            *fragments(TEXT, [b"b", b"c"]),
            frame(BINARY, big),
            frame(TEXT, medium.encode()),
            frame(BINARY, b"\x00\x01"),
            frame(TEXT, "é".encode()),
        ]
    )
    with RawClient(server.address) as raw:
        raw.send(wire)
        pongs, messages = split_pongs(raw, 7)
        assert pongs == [b"p1"]
        assert messages == ["a", "bc", big, medium, b"\x00\x01", "é"]


def test_whole_frames_split_across_tcp_writes_at_every_offset(server):
    wire = frame(TEXT, "héllo".encode()) + frame(PING, b"x") + frame(BINARY, b"\x07" * 130)
    with RawClient(server.address) as raw:
        for offset in range(1, len(wire)):
            raw.send(wire[:offset])
            time.sleep(0.002)  # let the first write reach the server alone
            raw.send(wire[offset:])
            assert split_pongs(raw, 3) == ([b"x"], ["héllo", b"\x07" * 130]), offset


def test_control_frames_between_fragments(server):
    """A ping between fragments is answered at once, in order; the message still arrives whole."""
    with RawClient(server.address) as raw:
        raw.send(frame(TEXT, b"one ", fin=False))
        raw.send(frame(PING, b"first"))
        raw.send(frame(CONTINUATION, b"two ", fin=False))
        raw.send(frame(PONG, b"unsolicited"))  # a pong nobody asked for is ignored
        raw.send(frame(PING, b"second"))
        raw.send(frame(CONTINUATION, b"three"))
        assert raw.pong() == b"first"
        assert raw.pong() == b"second"
        assert raw.message() == "one two three"


@pytest.mark.parametrize("payload", [b"", b"payload-123", bytes(range(125))], ids=["empty", "short", "125"])
def test_ping_gets_a_pong_with_its_payload(server, payload):
    with RawClient(server.address) as raw:
        raw.send(frame(PING, payload))
        assert raw.pong() == payload
        raw.send(frame(TEXT, b"after"))
        assert raw.message() == "after"


def test_ping_from_the_websockets_client(server):
    with ws_connect(server) as conn:
        started = time.monotonic()
        assert conn.ping(b"are you there").wait(timeout=5)
        assert time.monotonic() - started < 1


# -- UTF-8 ---------------------------------------------------------------------------

VALID_SPLITS = {
    "two-byte code point over two fragments": ([b"ab\xc3", b"\xa9cd"], "abécd"),
    "four-byte code point over four fragments": ([b"\xf0", b"\x9f", b"\x98", b"\x80"], "😀"),
    "three-byte code point at a frame end": ([b"x\xe2\x82", b"\xac"], "x€"),
}

INVALID = {
    "invalid byte": [b"\xff"],
    "invalid continuation": [b"abc\xc3\x28"],
    "overlong encoding": [b"\xc0\xaf"],
    "surrogate": [b"\xed\xa0\x80"],
    "beyond U+10FFFF": [b"\xf4\x90\x80\x80"],
    "invalid across fragments": [b"ab\xc3", b"\x28cd"],
    "invalid in a later fragment": [b"valid ", b"still valid ", b"\xfe"],
    "truncated at the end of the message": [b"ok", b"\xe2\x82"],
}


@pytest.mark.parametrize("name", sorted(VALID_SPLITS))
def test_code_point_split_over_fragments_is_valid(server, name):
    parts, text = VALID_SPLITS[name]
    with RawClient(server.address) as raw:
        for data in fragments(TEXT, parts):
            raw.send(data)
        assert raw.message() == text


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_utf8_closes_with_1007(server, name):
    with RawClient(server.address) as raw:
        raw.send(b"".join(fragments(TEXT, INVALID[name])))
        closed = raw.closed()
    assert closed.code == 1007
    assert closed.eof


def test_invalid_utf8_in_a_close_reason_closes_with_1007(server):
    with RawClient(server.address) as raw:
        raw.send(frame(CLOSE, b"\x03\xe8bad \xff reason"))
        closed = raw.closed(answer=False)
    assert closed.code == 1007
    assert closed.eof


def test_binary_messages_are_not_utf8_checked(server):
    with RawClient(server.address) as raw:
        raw.send(b"".join(fragments(BINARY, [b"\xff\xfe", b"\xc3"])))
        received = raw.receive()
    assert received is not None and received.opcode is Opcode.BINARY
    assert received.data == b"\xff\xfe\xc3"
