"""Limits: ``--ws-max-size`` (1009), bounded decompression, permessage-deflate on and off,
and the server's pings (``--ws-ping-interval``, ``--ws-ping-timeout``: 1011).
"""

from __future__ import annotations

import time

import pytest
from websockets.exceptions import ConnectionClosed
from wsproto.frame_protocol import Opcode

from tests.websocket.conftest import rss_kb, worker_pid, ws_connect
from tests.websocket.raw import BINARY, PONG, TEXT, RawClient, fragments, frame

KIB = 1024


def close_code(conn) -> int | None:
    """The close code the server sent, once the ``websockets`` connection has closed."""
    with pytest.raises(ConnectionClosed) as closed:
        conn.recv(timeout=5)
    return closed.value.rcvd.code if closed.value.rcvd is not None else None


def test_messages_up_to_the_limit_pass(limited):
    with ws_connect(limited) as conn:
        exactly = b"m" * (64 * KIB)
        conn.send(exactly)
        assert conn.recv(timeout=5) == exactly


def test_message_over_the_limit_closes_with_1009(limited):
    with ws_connect(limited, compression=None) as conn:
        started = time.monotonic()
        conn.send(b"x" * (65 * KIB))
        assert close_code(conn) == 1009
        # The close frame and the end of TCP come at once (the server does not wait
        # for an answer it will not read).
        assert time.monotonic() - started < 1.5


def test_fragmented_message_over_the_limit_closes_with_1009(limited):
    """No fragment is big, the message is: 65 fragments of 1 KiB."""
    with RawClient(limited.address) as raw:
        started = time.monotonic()
        raw.send(b"".join(fragments(TEXT, [b"f" * KIB] * 65)))
        closed = raw.closed(answer=False)  # a client that does not even answer the close
        elapsed = time.monotonic() - started
    assert closed.code == 1009
    assert closed.eof
    assert elapsed < 1.5, elapsed


def test_huge_declared_frame_closes_with_1009_without_the_payload(limited):
    """A frame header announcing 1 GiB: the server does not wait for (or buffer) it."""
    with RawClient(limited.address) as raw:
        head = frame(BINARY, b"y" * 70000)[:14]  # FIN|binary, 127, 8-byte length, mask key
        raw.send(head[:2] + (1 << 30).to_bytes(8, "big") + head[10:14] + b"y" * 70000)
        closed = raw.closed()
    assert closed.code == 1009


def test_compressed_bomb_closes_with_1009_in_bounded_memory(limited):
    """50 MB of zeros deflate to about 50 KB: the server stops inflating at the limit."""
    pid = worker_pid(limited)
    before = rss_kb(pid)
    with ws_connect(limited, compression="deflate") as conn:
        assert "permessage-deflate" in conn.response.headers.get("Sec-WebSocket-Extensions", "")
        bomb = bytes(50 * 1000 * 1000)
        started = time.monotonic()
        conn.send(bomb)
        del bomb
        assert close_code(conn) == 1009
        elapsed = time.monotonic() - started
    grown = rss_kb(pid) - before
    assert elapsed < 3, elapsed
    assert grown < 64 * KIB, f"the worker grew by {grown} kB"


def test_compressed_messages_echo(server):
    messages = ["compressible " * 5000, b"\x00" * 100_000, "é" * 10, b""]
    with ws_connect(server, compression="deflate") as conn:
        extensions = conn.response.headers.get("Sec-WebSocket-Extensions", "")
        assert extensions.startswith("permessage-deflate")
        for message in messages:
            conn.send(message)
            assert conn.recv(timeout=5) == message


def test_negotiated_compression_is_what_the_server_sends(server):
    """With permessage-deflate agreed, the server's messages go out compressed (RSV1), not plain."""
    text = b"compressible " * 100
    with RawClient(server.address, headers=[("Sec-WebSocket-Extensions", "permessage-deflate")]) as raw:
        assert raw.headers.get("sec-websocket-extensions", "").startswith("permessage-deflate")
        raw.send(frame(TEXT, text))  # a client may send any message uncompressed
        raw.sock.settimeout(5)
        first = raw.sock.recv(65536)
    assert first[0] == 0x80 | 0x40 | TEXT, first[:2]  # FIN, RSV1 (compressed), text
    assert first[1] & 0x7F < len(text) // 10, first[:2]


def test_compression_can_be_refused(no_deflate):
    with ws_connect(no_deflate, compression="deflate") as conn:
        assert "Sec-WebSocket-Extensions" not in conn.response.headers
        conn.send("plain " * 1000)
        assert conn.recv(timeout=5) == "plain " * 1000
        conn.send(b"\x01\x02")
        assert conn.recv(timeout=5) == b"\x01\x02"


def test_compressed_frame_without_the_extension_is_a_protocol_error(no_deflate):
    with RawClient(no_deflate.address) as raw:
        raw.send(frame(TEXT, b"\xf2\x48\xcd\xc9\xc9\x07\x00", rsv=4))  # "Hello", deflated, RSV1
        assert raw.closed().code == 1002


# -- pings from the server ------------------------------------------------------------


def test_client_ignoring_pings_is_closed_with_1011(limited):
    with RawClient(limited.address) as raw:
        started = time.monotonic()
        ping = raw.receive(timeout=3, skip_pings=False)
        assert ping is not None and ping.opcode is Opcode.PING  # and no pong goes back
        closed = raw.closed(timeout=3)
        elapsed = time.monotonic() - started
    assert closed.code == 1011
    assert closed.eof
    assert elapsed < 2.5, elapsed


def test_client_answering_pings_stays_open(limited):
    with RawClient(limited.address) as raw:
        pings = 0
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            try:
                received = raw.receive(timeout=deadline - time.monotonic(), skip_pings=False)
            except AssertionError:
                break  # no more traffic before the deadline
            assert received is not None and received.opcode is Opcode.PING, received
            pings += 1
            raw.send(frame(PONG, bytes(received.data)))  # type: ignore[arg-type]
        assert pings >= 2
        raw.send(frame(TEXT, b"still open"))
        assert raw.message() == "still open"
