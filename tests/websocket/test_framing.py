"""Frame rules (RFC 6455 section 5) and the close handshake (section 7), from raw frames.

A frame that breaks the rules fails the connection: the server sends a close
frame with 1002 (protocol error) and closes TCP. The close handshake is
checked from both sides, and what the application saw of it.
"""

from __future__ import annotations

import time

import pytest
from websockets.exceptions import ConnectionClosed

from tests.websocket.conftest import ws_connect
from tests.websocket.raw import CLOSE, CONTINUATION, PING, PONG, TEXT, RawClient, close_payload, frame


def assert_fails_with(raw: RawClient, code: int) -> None:
    closed = raw.closed()
    assert closed.code == code, closed
    assert closed.eof, "the server did not close the TCP connection after its close frame"


BROKEN = {
    "unmasked client frame": frame(TEXT, b"hello", masked=False),
    "RSV1 without an extension": frame(TEXT, b"hello", rsv=4),
    "RSV2": frame(TEXT, b"hello", rsv=2),
    "RSV3": frame(TEXT, b"hello", rsv=1),
    "RSV bits on a ping": frame(PING, b"x", rsv=7),
    "opcode 0x3": frame(0x3, b"data"),
    "opcode 0x7": frame(0x7, b"data"),
    "opcode 0xB": frame(0xB, b""),
    "opcode 0xF": frame(0xF, b""),
    "ping over 125 bytes": frame(PING, b"p" * 126),
    "pong over 125 bytes": frame(PONG, b"p" * 126),
    "close over 125 bytes": frame(CLOSE, close_payload(1000, b"r" * 124)),
    "fragmented ping": frame(PING, b"half", fin=False) + frame(CONTINUATION, b"half"),
    "continuation without a message": frame(CONTINUATION, b"orphan"),
    "new message inside a fragmented one": frame(TEXT, b"first", fin=False) + frame(TEXT, b"second"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_protocol_error_closes_with_1002(server, name):
    with RawClient(server.address) as raw:
        raw.send(frame(TEXT, b"before"))
        assert raw.message() == "before"
        raw.send(BROKEN[name])
        assert_fails_with(raw, 1002)


def test_the_worker_survives_protocol_errors(survivor):
    for wire in BROKEN.values():
        with RawClient(survivor.address) as raw:
            raw.send(wire)
            assert raw.closed().code == 1002


# -- the close handshake ------------------------------------------------------------------


def test_client_close_is_echoed_then_tcp_closes(server, markers):
    marker = markers.new()
    with RawClient(server.address, f"/echo?marker={marker}") as raw:
        raw.send(frame(CLOSE, close_payload(1000, b"done here")))
        started = time.monotonic()
        reply = raw.receive()
        assert reply is not None and reply.code == 1000
        assert raw.wait_eof(2), "the server kept the TCP connection after the close handshake"
        assert time.monotonic() - started < 1
    seen = markers.wait(marker)
    assert seen["closed"]
    if server.kind == "asgi":
        assert seen["code"] == 1000


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1011, 3000, 4999])
def test_valid_close_codes_are_accepted(server, code):
    with RawClient(server.address) as raw:
        raw.send(frame(CLOSE, close_payload(code, b"reason")))
        reply = raw.receive()
        assert reply is not None and reply.code == code
        assert raw.wait_eof(2)


def test_empty_close_frame_is_answered(server):
    with RawClient(server.address) as raw:
        raw.send(frame(CLOSE))
        reply = raw.receive()
        assert reply is not None
        assert reply.code in (1000, 1005), reply  # 1005 stands for "no code" (never on the wire)
        assert raw.wait_eof(2)


@pytest.mark.parametrize(
    "payload", [b"\x03", *(close_payload(c) for c in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000))]
)
def test_invalid_close_code_is_a_protocol_error(server, payload):
    with RawClient(server.address) as raw:
        raw.send(frame(CLOSE, payload))
        assert_fails_with(raw, 1002)


def test_frames_after_a_close_are_ignored(server):
    with RawClient(server.address) as raw:
        raw.send(frame(CLOSE, close_payload(1000)) + frame(CLOSE, close_payload(1001)) + frame(TEXT, b"late"))
        reply = raw.receive()
        assert reply is not None and reply.code == 1000
        assert raw.receive() is None  # nothing more (no second close, no echo), then EOF


def test_server_initiated_close_with_4000(server):
    with ws_connect(server, "/close4000") as conn:
        assert conn.recv(timeout=5) == "closing"
        with pytest.raises(ConnectionClosed) as closed:
            conn.recv(timeout=5)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4000
    assert closed.value.rcvd.reason == "bye now"


def test_server_initiated_close_seen_by_a_raw_client(server):
    with RawClient(server.address, "/close4000") as raw:
        assert raw.message() == "closing"
        closed = raw.closed()
    assert (closed.code, closed.reason, closed.eof) == (4000, "bye now", True)


def test_server_close_unanswered_still_ends_tcp(server):
    """A client that never answers the server's close: the server closes TCP itself."""
    with RawClient(server.address, "/close4000") as raw:
        closed = raw.closed(answer=False)
    assert closed.code == 4000
    assert closed.eof
