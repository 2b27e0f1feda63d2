"""Unit tests for greenserve.protocol.chunked.ChunkedDecoder."""

from __future__ import annotations

import pytest

from greenserve.errors import ProtocolError
from greenserve.protocol.chunked import MAX_CHUNK_LINE, ChunkedDecoder
from greenserve.protocol.events import Limits


def decode_all(data: bytes, limits: Limits | None = None) -> tuple[bytes, int, ChunkedDecoder]:
    decoder = ChunkedDecoder(limits or Limits())
    pieces: list[bytes] = []
    pos = decoder.decode(data, 0, pieces.append)
    return b"".join(pieces), pos, decoder


def decode_incrementally(data: bytes, step: int, limits: Limits | None = None) -> tuple[bytes, bytes]:
    """Feed like RequestParser does: keep the unconsumed rest, append the next piece."""
    decoder = ChunkedDecoder(limits or Limits())
    pieces: list[bytes] = []
    pending = b""
    for start in range(0, len(data), step):
        pending += data[start : start + step]
        pos = decoder.decode(pending, 0, pieces.append)
        pending = pending[pos:]
        if decoder.done:
            return b"".join(pieces), pending + data[start + step :]
    raise AssertionError("never done")


def error_status(data: bytes, limits: Limits | None = None) -> int:
    with pytest.raises(ProtocolError) as info:
        decode_all(data, limits)
    return info.value.status


def test_simple_body_and_position() -> None:
    data = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT"
    body, pos, decoder = decode_all(data)
    assert body == b"hello world"
    assert decoder.done
    assert data[pos:] == b"NEXT"


def test_decode_from_an_offset() -> None:
    data = b"XXXX3\r\nabc\r\n0\r\n\r\n"
    decoder = ChunkedDecoder(Limits())
    pieces: list[bytes] = []
    assert decoder.decode(data, 4, pieces.append) == len(data)
    assert pieces == [b"abc"] and decoder.done


@pytest.mark.parametrize("step", [1, 2, 3, 5, 7, 64])
def test_incremental_decoding(step: int) -> None:
    data = (
        b"a;ext=1\r\n0123456789\r\n"
        b'3 ; q="x;y"\r\nabc\r\n'
        b"0\r\nTrailer: yes\r\nOther:\r\n\r\n"
        b"GET / HTTP/1.1\r\n"
    )
    body, rest = decode_incrementally(data, step)
    assert body == b"0123456789abc"
    assert rest == b"GET / HTTP/1.1\r\n"


def test_incomplete_input_is_not_done() -> None:
    for cut in range(len(b"5\r\nhello\r\n0\r\n\r\n")):
        _, _, decoder = decode_all(b"5\r\nhello\r\n0\r\n\r\n"[:cut])
        assert not decoder.done


def test_body_pieces_are_streamed_before_the_chunk_ends() -> None:
    body, pos, decoder = decode_all(b"a\r\nhel")
    assert body == b"hel"
    assert pos == 6
    assert not decoder.done


@pytest.mark.parametrize(
    "line",
    [
        b"5",
        b"05",
        b"0000000000000005",
        b"5;a",
        b"5;a=b",
        b'5;a="b c"',
        b'5;a="\\"\\\\"',
        b"5 ;a",
        b"5\t;\ta\t=\tb",
        b"5;a;b;c=d",
        b'5;a="\x80\xff"',
    ],
)
def test_valid_size_lines(line: bytes) -> None:
    body, _, decoder = decode_all(line + b"\r\nhello\r\n0\r\n\r\n")
    assert body == b"hello" and decoder.done


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"+5",
        b"-5",
        b" 5",
        b"5 ",
        b"5\t",
        b"1_0",
        b"0x5",
        b"g",
        b";a",
        b"5;",
        b"5;a=",
        b"5;a=b c",
        b'5;a="b',
        b"5;a\rb",
        b"5;=b",
        b"5;a b",
        b"00000000000000005",
    ],
)
def test_invalid_size_lines(line: bytes) -> None:
    assert error_status(line + b"\r\nhello\r\n0\r\n\r\n") == 400


@pytest.mark.parametrize(
    "data",
    [
        b"5\nhello\r\n0\r\n\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"5\r\nhelloXX",
        b"5\r\nhello\rX",
        b"5\r\nhello\r\n0\n\r\n",
        b"5\r\nhello\r\n0\r\n\n",
        b"0\r\nno colon\r\n\r\n",
        b"0\r\nX : v\r\n\r\n",
        b"0\r\n folded: v\r\n\r\n",
        b"0\r\nX: a\x00b\r\n\r\n",
        b"0\r\nX: a\x7fb\r\n\r\n",
        b"0\r\nX: v\nY: w\r\n\r\n",
    ],
)
def test_invalid_framing(data: bytes) -> None:
    assert error_status(data) == 400


def test_bare_lf_is_refused_without_waiting_for_crlf() -> None:
    assert error_status(b"5\n") == 400
    assert error_status(b"0\r\nX: v\n") == 400


def test_chunk_line_length_limit() -> None:
    ok = b"1;" + b"x" * (MAX_CHUNK_LINE - 2)
    assert len(ok) == MAX_CHUNK_LINE
    body, _, decoder = decode_all(ok + b"\r\nz\r\n0\r\n\r\n")
    assert body == b"z" and decoder.done
    assert error_status(ok + b"x\r\nz\r\n0\r\n\r\n") == 400
    # Refused before the line ends, too.
    assert error_status(ok + b"xx") == 400


def test_body_limit_413() -> None:
    limits = Limits(body_size=10)
    body, _, decoder = decode_all(b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", limits)
    assert body == b"helloworld" and decoder.done
    decoder = ChunkedDecoder(limits)
    pieces: list[bytes] = []
    with pytest.raises(ProtocolError) as info:
        decoder.decode(b"5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n", 0, pieces.append)
    assert info.value.status == 413
    assert pieces == [b"hello"]  # refused at the size line, before its data


def test_body_limit_counts_across_calls() -> None:
    decoder = ChunkedDecoder(Limits(body_size=4))
    pieces: list[bytes] = []
    decoder.decode(b"3\r\nabc\r\n", 0, pieces.append)
    with pytest.raises(ProtocolError) as info:
        decoder.decode(b"2\r\nde\r\n", 0, pieces.append)
    assert info.value.status == 413


def test_huge_chunk_size_is_413_not_overflow() -> None:
    assert error_status(b"FFFFFFFFFFFFFFFF\r\n") == 413


def test_no_body_limit_when_zero() -> None:
    decoder = ChunkedDecoder(Limits(body_size=0))
    pieces: list[bytes] = []
    decoder.decode(b"FFFFFFFFFFFFFFFF\r\nabc", 0, pieces.append)
    assert pieces == [b"abc"] and not decoder.done


def test_trailer_count_limit_431() -> None:
    limits = Limits(fields=2)
    _, _, decoder = decode_all(b"0\r\nA: 1\r\nB: 2\r\n\r\n", limits)
    assert decoder.done
    assert error_status(b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits) == 431


def test_trailer_size_limit() -> None:
    limits = Limits(field_size=16)
    _, _, decoder = decode_all(b"0\r\nX: " + b"v" * 13 + b"\r\n\r\n", limits)
    assert decoder.done
    with pytest.raises(ProtocolError) as info:
        decode_all(b"0\r\nX: " + b"v" * 40 + b"\r\n\r\n", limits)
    assert info.value.status in (400, 431)


def test_trailers_are_dropped() -> None:
    body, _, decoder = decode_all(b"1\r\nx\r\n0\r\nX-Sum: 1\r\nX-Other: two\r\n\r\n")
    assert body == b"x"
    assert decoder.done
