"""The PROXY protocol preamble (greenserve.protocol.proxy_protocol), on bytes.

Every valid preamble is fed split at every offset and one byte at a time, and
must give the same header and leave the HTTP bytes after it untouched; every
malformed one must be refused with a reason that is safe to log, whatever
prefix of it has arrived.
"""

from __future__ import annotations

import ipaddress
import re
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenserve.errors import ProtocolError
from greenserve.protocol.proxy_protocol import (
    MAX_V1_LENGTH,
    MAX_V2_LENGTH,
    PP2_TYPE_AWS,
    V2_SIGNATURE,
    Detection,
    Family,
    InetAddress,
    PreambleReader,
    ProxyHeader,
    ProxyProtocolError,
    SSLInfo,
    Transport,
    UnixAddress,
    crc32c,
    detect,
    parse,
    versions_for,
)

HTTP = b"GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n"


# -- building v2 headers ---------------------------------------------------------------


def tlv(kind: int, value: bytes) -> bytes:
    return bytes((kind,)) + struct.pack("!H", len(value)) + value


def v2(
    command: int = 1,
    fam: int = 0x11,
    body: bytes = b"",
    *,
    version: int = 2,
    length: int | None = None,
) -> bytes:
    """A v2 header: the signature, version/command, family, length, then ``body``."""
    size = len(body) if length is None else length
    return V2_SIGNATURE + bytes(((version << 4) | command, fam)) + struct.pack("!H", size) + body


def inet4(src: str, dst: str, sport: int, dport: int) -> bytes:
    return (
        ipaddress.IPv4Address(src).packed
        + ipaddress.IPv4Address(dst).packed
        + struct.pack("!HH", sport, dport)
    )


def inet6(src: str, dst: str, sport: int, dport: int) -> bytes:
    return (
        ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + struct.pack("!HH", sport, dport)
    )


def unix(src: bytes, dst: bytes) -> bytes:
    return src.ljust(108, b"\x00") + dst.ljust(108, b"\x00")


def ssl_tlv(client: int, verify: int, *subs: bytes) -> bytes:
    return tlv(0x20, bytes((client,)) + struct.pack("!I", verify) + b"".join(subs))


def with_crc(fam: int, addresses: bytes, other_tlvs: bytes = b"") -> bytes:
    """A v2 PROXY header ending with a correct CRC32C TLV."""
    body = addresses + other_tlvs + tlv(0x03, b"\x00\x00\x00\x00")
    header = v2(1, fam, body)
    return header[:-4] + struct.pack("!I", crc32c(header))


# -- the valid corpus ----------------------------------------------------------------------

ALL_F = b"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
WORST_V1 = b"PROXY UNKNOWN " + ALL_F + b" " + ALL_F + b" 65535 65535\r\n"

VALID: list[tuple[str, bytes, dict]] = [
    (
        "v1-tcp4",
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
        {
            "version": 1,
            "local": False,
            "family": Family.INET,
            "transport": Transport.STREAM,
            "source": InetAddress("192.168.0.1", 56324),
            "destination": InetAddress("192.168.0.11", 443),
        },
    ),
    (
        "v1-tcp4-longest",
        b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
        {
            "source": InetAddress("255.255.255.255", 65535),
            "destination": InetAddress("255.255.255.255", 65535),
        },
    ),
    (
        "v1-tcp4-zeros",
        b"PROXY TCP4 0.0.0.0 10.0.0.1 0 0\r\n",
        {"source": InetAddress("0.0.0.0", 0), "destination": InetAddress("10.0.0.1", 0)},
    ),
    (
        "v1-tcp6",
        b"PROXY TCP6 2001:db8::1 2001:DB8:0:0:0:0:0:2 4711 8443\r\n",
        {
            "family": Family.INET6,
            "source": InetAddress("2001:db8::1", 4711),
            "destination": InetAddress("2001:db8::2", 8443),
        },
    ),
    (
        "v1-tcp6-longest",
        b"PROXY TCP6 " + ALL_F + b" " + ALL_F + b" 1 65535\r\n",
        {"source": InetAddress("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1)},
    ),
    (
        "v1-tcp6-mapped",
        b"PROXY TCP6 ::ffff:192.0.2.7 ::1 5000 80\r\n",
        {"source": InetAddress("::ffff:192.0.2.7", 5000), "destination": InetAddress("::1", 80)},
    ),
    ("v1-unknown-short", b"PROXY UNKNOWN\r\n", {"version": 1, "local": True, "source": None}),
    ("v1-unknown-worst-case-107", WORST_V1, {"version": 1, "local": True, "length": 107}),
    ("v1-unknown-junk-ignored", b"PROXY UNKNOWN whatever \x01 the sender put\r\n", {"local": True}),
    (
        "v2-tcp4",
        v2(1, 0x11, inet4("203.0.113.7", "10.0.0.1", 40000, 443)),
        {
            "version": 2,
            "local": False,
            "family": Family.INET,
            "transport": Transport.STREAM,
            "source": InetAddress("203.0.113.7", 40000),
            "destination": InetAddress("10.0.0.1", 443),
            "tlvs": (),
        },
    ),
    (
        "v2-udp4",
        v2(1, 0x12, inet4("203.0.113.7", "10.0.0.1", 1, 2)),
        {"transport": Transport.DGRAM, "source": InetAddress("203.0.113.7", 1)},
    ),
    (
        "v2-tcp6",
        v2(1, 0x21, inet6("2001:db8::7", "2001:db8::1", 65535, 80)),
        {
            "family": Family.INET6,
            "source": InetAddress("2001:db8::7", 65535),
            "destination": InetAddress("2001:db8::1", 80),
        },
    ),
    (
        "v2-tcp6-mapped",
        v2(1, 0x21, inet6("::ffff:198.51.100.9", "::1", 2, 3)),
        {"source": InetAddress("::ffff:198.51.100.9", 2)},
    ),
    ("v2-udp6", v2(1, 0x22, inet6("::2", "::3", 4, 5)), {"transport": Transport.DGRAM}),
    (
        "v2-unix-stream",
        v2(1, 0x31, unix(b"/run/client.sock", b"/run/haproxy.sock")),
        {
            "family": Family.UNIX,
            "transport": Transport.STREAM,
            "source": UnixAddress(b"/run/client.sock"),
            "destination": UnixAddress(b"/run/haproxy.sock"),
        },
    ),
    (
        "v2-unix-abstract",
        v2(1, 0x32, unix(b"\x00abstract", b"")),
        {
            "transport": Transport.DGRAM,
            "source": UnixAddress(b"\x00abstract"),
            "destination": UnixAddress(b""),
        },
    ),
    ("v2-local", v2(0, 0x00), {"version": 2, "local": True, "source": None, "length": 16}),
    (
        "v2-local-with-address-skipped",
        v2(0, 0x11, inet4("1.2.3.4", "5.6.7.8", 1, 2) + b"anything"),
        {"local": True, "source": None, "length": 16 + 12 + 8},
    ),
    ("v2-local-family-ignored", v2(0, 0x77, b"xyz"), {"local": True, "length": 19}),
    ("v2-proxy-unspec", v2(1, 0x00, b"\x01\x02\x03"), {"local": True, "source": None}),
    (
        "v2-tlvs",
        v2(
            1,
            0x11,
            inet4("203.0.113.7", "10.0.0.1", 40000, 443)
            + tlv(0x01, b"h2")
            + tlv(0x02, "bücher.example".encode())
            + tlv(0x04, b"\x00\x00\x00")
            + tlv(0x05, b"\x8a" * 128)
            + tlv(0x30, b"blue")
            + tlv(0xE3, b"custom")
            + tlv(0xEA, b"\x01vpce-0123456789abcdef0"),
        ),
        {
            "alpn": b"h2",
            "authority": "bücher.example",
            "unique_id": b"\x8a" * 128,
            "netns": "blue",
            "aws_vpce_id": "vpce-0123456789abcdef0",
            "tlvs": (
                (0x01, b"h2"),
                (0x02, "bücher.example".encode()),
                (0x04, b"\x00\x00\x00"),
                (0x05, b"\x8a" * 128),
                (0x30, b"blue"),
                (0xE3, b"custom"),
                (0xEA, b"\x01vpce-0123456789abcdef0"),
            ),
        },
    ),
    (
        "v2-empty-tlvs",
        v2(1, 0x11, inet4("1.1.1.1", "2.2.2.2", 1, 2) + tlv(0x04, b"") + tlv(0x05, b"")),
        {"unique_id": b"", "tlvs": ((0x04, b""), (0x05, b""))},
    ),
    (
        "v2-ssl",
        v2(
            1,
            0x11,
            inet4("203.0.113.7", "10.0.0.1", 40000, 443)
            + ssl_tlv(
                0x07,
                0,
                tlv(0x21, b"TLSv1.3"),
                tlv(0x22, "Zoë Client".encode()),
                tlv(0x23, b"TLS_AES_128_GCM_SHA256"),
                tlv(0x24, b"RSA-SHA256"),
                tlv(0x25, b"RSA2048"),
                tlv(0x2A, b"future"),
            ),
        ),
        {
            "ssl": SSLInfo(
                client=0x07,
                verify=0,
                version="TLSv1.3",
                cn="Zoë Client",
                cipher="TLS_AES_128_GCM_SHA256",
                sig_alg="RSA-SHA256",
                key_alg="RSA2048",
                tlvs=(
                    (0x21, b"TLSv1.3"),
                    (0x22, "Zoë Client".encode()),
                    (0x23, b"TLS_AES_128_GCM_SHA256"),
                    (0x24, b"RSA-SHA256"),
                    (0x25, b"RSA2048"),
                    (0x2A, b"future"),
                ),
            )
        },
    ),
    (
        "v2-ssl-minimal",
        v2(1, 0x11, inet4("1.1.1.1", "2.2.2.2", 1, 2) + ssl_tlv(0x00, 1)),
        {"ssl": SSLInfo(client=0, verify=1)},
    ),
    (
        "v2-crc32c",
        with_crc(0x11, inet4("1.2.3.4", "5.6.7.8", 9, 10), tlv(0x01, b"http/1.1")),
        {"alpn": b"http/1.1"},
    ),
    (
        "v2-at-the-size-limit",
        v2(1, 0x11, inet4("1.1.1.1", "2.2.2.2", 1, 2) + tlv(0xE0, b"x" * (MAX_V2_LENGTH - 16 - 12 - 3))),
        {"length": MAX_V2_LENGTH},
    ),
]


@pytest.mark.parametrize(
    ("preamble", "expected"), [case[1:] for case in VALID], ids=[case[0] for case in VALID]
)
def test_valid_preamble_at_every_split_offset(preamble: bytes, expected: dict) -> None:
    data = preamble + HTTP
    whole = parse(data)
    assert whole is not None
    assert whole.length == len(preamble)
    for name, value in expected.items():
        assert getattr(whole, name) == value, name
    for offset in range(len(data) + 1):
        reader = PreambleReader("auto")
        first = reader.feed(data[:offset])
        if offset < len(preamble):
            assert first is None, offset
            assert reader.feed(data[offset:]) == whole
        else:
            assert first == whole
            assert reader.rest == data[len(preamble) : offset]
            continue
        assert reader.rest == HTTP


@pytest.mark.parametrize("preamble", [case[1] for case in VALID], ids=[case[0] for case in VALID])
def test_valid_preamble_one_byte_at_a_time(preamble: bytes) -> None:
    reader = PreambleReader("auto")
    results = [reader.feed(preamble[index : index + 1]) for index in range(len(preamble))]
    assert results[:-1] == [None] * (len(preamble) - 1)
    assert results[-1] is not None and results[-1].length == len(preamble)
    assert reader.rest == b""
    assert parse(preamble[:-1]) is None


@pytest.mark.parametrize("preamble", [case[1] for case in VALID], ids=[case[0] for case in VALID])
def test_truncated_preamble_is_refused_at_end_of_stream(preamble: bytes) -> None:
    for end in (1, len(preamble) // 2, len(preamble) - 1):
        reader = PreambleReader("auto")
        assert reader.feed(preamble[:end]) is None
        with pytest.raises(
            ProxyProtocolError, match="connection closed in the middle of a PROXY protocol header"
        ):
            reader.feed_eof()


def test_end_of_stream_before_or_after_the_preamble() -> None:
    reader = PreambleReader()
    with pytest.raises(ProxyProtocolError, match="connection closed before a PROXY protocol header"):
        reader.feed_eof()
    assert reader.feed(b"") is None
    with pytest.raises(ProxyProtocolError, match="before"):
        reader.feed_eof()
    reader = PreambleReader()
    assert reader.feed(b"PROXY UNKNOWN\r\n") is not None
    reader.feed_eof()  # the HTTP parser deals with what follows


@pytest.mark.parametrize("preamble", [case[1] for case in VALID], ids=[case[0] for case in VALID])
def test_max_read_never_reads_past_the_preamble(preamble: bytes) -> None:
    """A TLS listener reads at most max_read() bytes: the handshake after the preamble stays unread."""
    stream = preamble + b"\x16\x03\x01 TLS ClientHello"
    reader = PreambleReader("auto")
    position = reads = 0
    header = None
    while header is None:
        size = reader.max_read()
        assert size > 0
        header = reader.feed(stream[position : position + size])
        position += len(stream[position : position + size])
        reads += 1
    assert position == len(preamble)
    assert reader.rest == b""
    assert reader.max_read() == 0
    assert reads <= 3 + max(0, len(preamble) - 15) // 2


def test_max_read_before_anything_arrives() -> None:
    assert PreambleReader().max_read() == 15
    reader = PreambleReader()
    reader.feed(V2_SIGNATURE[:10])
    assert reader.max_read() == 5
    reader.feed(V2_SIGNATURE[10:] + b"\x21\x11")
    assert reader.max_read() == 2
    reader.feed(b"\x00\x0c")
    assert reader.max_read() == 12
    reader = PreambleReader()
    reader.feed(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r")
    assert reader.max_read() == 1


def test_the_reader_hands_over_once() -> None:
    reader = PreambleReader()
    assert reader.feed(b"PROXY UNKNOWN\r\n" + HTTP) is not None
    assert reader.header is not None and reader.header.local
    with pytest.raises(RuntimeError):
        reader.feed(b"more")


# -- the malformed corpus -----------------------------------------------------------------

TCP4 = inet4("1.2.3.4", "5.6.7.8", 1000, 80)

MALFORMED: list[tuple[str, bytes, str]] = [
    # v1: line endings and length
    ("v1-bare-lf", b"PROXY TCP4 1.2.3.4 5.6.7.8 1000 80\n", "bare LF"),
    ("v1-lf-before-cr", b"PROXY TCP4 1.2.3.4\n5.6.7.8 1000 80\r\n", "bare LF"),
    ("v1-cr-without-lf", b"PROXY TCP4 1.2.3.4 5.6.7.8 1000 80\rGET", "CR not followed by LF"),
    ("v1-no-crlf-in-107", b"PROXY UNKNOWN " + b"f" * 93 + b"\r\n", "no CRLF in its first 107 bytes"),
    ("v1-no-crlf-at-all", b"PROXY TCP4 " + b"1" * 200, "no CRLF in its first 107 bytes"),
    ("v1-no-space-after-proxy", b"PROXYTCP4 1.2.3.4 5.6.7.8 1000 80\r\n", "expected a space after PROXY"),
    ("v1-empty", b"PROXY \r\n", "TCP4, TCP6 or UNKNOWN"),
    ("v1-double-space", b"PROXY TCP4  1.2.3.4 5.6.7.8 1000 80\r\n", "with single spaces"),
    ("v1-trailing-space", b"PROXY TCP4 1.2.3.4 5.6.7.8 1000 80 \r\n", "with single spaces"),
    ("v1-missing-port", b"PROXY TCP4 1.2.3.4 5.6.7.8 1000\r\n", "with single spaces"),
    ("v1-tab", b"PROXY TCP4\t1.2.3.4 5.6.7.8 1000 80\r\n", "printable US-ASCII"),
    ("v1-nul", b"PROXY TCP4 1.2.3.4\x00 5.6.7.8 1000 80\r\n", "printable US-ASCII"),
    ("v1-high-byte", "PROXY TCP4 1.2.3.٤ 5.6.7.8 1000 80\r\n".encode(), "printable US-ASCII"),
    ("v1-lowercase-protocol", b"PROXY tcp4 1.2.3.4 5.6.7.8 1000 80\r\n", "TCP4, TCP6 or UNKNOWN"),
    ("v1-udp4", b"PROXY UDP4 1.2.3.4 5.6.7.8 1000 80\r\n", "TCP4, TCP6 or UNKNOWN"),
    ("v1-unknownx", b"PROXY UNKNOWNX\r\n", "TCP4, TCP6 or UNKNOWN"),
    # v1: addresses
    ("v1-ipv4-leading-zero", b"PROXY TCP4 01.2.3.4 5.6.7.8 1000 80\r\n", "source address is not an IPv4"),
    ("v1-ipv4-256", b"PROXY TCP4 1.2.3.4 5.6.7.256 1000 80\r\n", "destination address is not an IPv4"),
    ("v1-ipv4-three-parts", b"PROXY TCP4 1.2.3 5.6.7.8 1000 80\r\n", "source address is not an IPv4"),
    ("v1-ipv4-empty-part", b"PROXY TCP4 1..3.4 5.6.7.8 1000 80\r\n", "source address is not an IPv4"),
    ("v1-ipv4-hostname", b"PROXY TCP4 localhost 5.6.7.8 1000 80\r\n", "source address is not an IPv4"),
    ("v1-ipv4-plus", b"PROXY TCP4 +1.2.3.4 5.6.7.8 1000 80\r\n", "source address is not an IPv4"),
    ("v1-tcp4-with-ipv6", b"PROXY TCP4 ::1 ::1 1000 80\r\n", "source address is not an IPv4"),
    ("v1-tcp6-with-ipv4", b"PROXY TCP6 1.2.3.4 5.6.7.8 1000 80\r\n", "source address is not an IPv6"),
    ("v1-tcp6-mixed", b"PROXY TCP6 ::1 5.6.7.8 1000 80\r\n", "destination address is not an IPv6"),
    ("v1-ipv6-zone", b"PROXY TCP6 fe80::1%eth0 ::1 1000 80\r\n", "source address is not an IPv6"),
    ("v1-ipv6-two-double-colons", b"PROXY TCP6 1::2::3 ::1 1000 80\r\n", "source address is not an IPv6"),
    ("v1-ipv6-brackets", b"PROXY TCP6 [::1] ::1 1000 80\r\n", "source address is not an IPv6"),
    # v1: ports
    ("v1-port-65536", b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 80\r\n", "source port is not a number"),
    ("v1-port-leading-zero", b"PROXY TCP4 1.2.3.4 5.6.7.8 1000 080\r\n", "destination port is not a number"),
    ("v1-port-negative", b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 80\r\n", "source port is not a number"),
    ("v1-port-hex", b"PROXY TCP4 1.2.3.4 5.6.7.8 0x50 80\r\n", "source port is not a number"),
    ("v1-port-huge", b"PROXY TCP4 1.2.3.4 5.6.7.8 100000000 80\r\n", "source port is not a number"),
    ("v1-port-plus", b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 80\r\n", "source port is not a number"),
    # not a preamble at all
    ("http-instead", HTTP, "expected a PROXY protocol header"),
    ("tls-instead", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "expected a PROXY protocol header"),
    ("blank-lines-then-http", b"\r\n\r\nGET / HTTP/1.1\r\n", "expected a PROXY protocol header"),
    ("lowercase-proxy", b"proxy TCP4 1.2.3.4 5.6.7.8 1000 80\r\n", "expected a PROXY protocol header"),
    # v2: fixed part
    ("v2-version-1", v2(1, 0x11, TCP4, version=1), "version 1, expected 2"),
    ("v2-version-3", v2(1, 0x11, TCP4, version=3), "version 3, expected 2"),
    ("v2-command-2", v2(2, 0x11, TCP4), "unknown command 0x2"),
    ("v2-command-f", v2(0xF, 0x11, TCP4), "unknown command 0xf"),
    ("v2-family-4", v2(1, 0x41, TCP4), "unknown family/transport 0x41"),
    ("v2-transport-3", v2(1, 0x13, TCP4), "unknown family/transport 0x13"),
    ("v2-inet-unspec-transport", v2(1, 0x10, TCP4), "unknown family/transport 0x10"),
    ("v2-unspec-family-stream", v2(1, 0x01, TCP4), "unknown family/transport 0x01"),
    # v2: lengths
    ("v2-oversized", v2(1, 0x11, TCP4, length=MAX_V2_LENGTH - 15), f"more than the {MAX_V2_LENGTH} allowed"),
    ("v2-largest-length", v2(1, 0x11, b"", length=0xFFFF), "65551 bytes, more than"),
    ("v2-inet-too-short", v2(1, 0x11, TCP4[:11]), "address block of 11 bytes, INET needs 12"),
    ("v2-inet6-with-inet-length", v2(1, 0x21, TCP4), "address block of 12 bytes, INET6 needs 36"),
    ("v2-inet-zero-length", v2(1, 0x11, b""), "address block of 0 bytes, INET needs 12"),
    ("v2-unix-too-short", v2(1, 0x31, b"\x00" * 215), "address block of 215 bytes, UNIX needs 216"),
    # v2: TLVs
    ("v2-stray-byte", v2(1, 0x11, TCP4 + b"\x01"), "1 stray bytes after the last TLV"),
    ("v2-stray-two-bytes", v2(1, 0x11, TCP4 + b"\x01\x00"), "2 stray bytes after the last TLV"),
    ("v2-tlv-overruns", v2(1, 0x11, TCP4 + b"\x01\x00\x05h2"), "TLV 0x01 overruns its container"),
    ("v2-second-tlv-overruns", v2(1, 0x11, TCP4 + tlv(1, b"h2") + b"\x05\xff\xff"), "TLV 0x05 overruns"),
    ("v2-empty-alpn", v2(1, 0x11, TCP4 + tlv(1, b"")), "empty ALPN TLV"),
    ("v2-authority-not-utf8", v2(1, 0x11, TCP4 + tlv(2, b"\xff\xfe")), "authority TLV is not valid UTF-8"),
    ("v2-authority-crlf", v2(1, 0x11, TCP4 + tlv(2, b"a\r\nX-Evil: 1")), "authority TLV contains control"),
    ("v2-unique-id-129", v2(1, 0x11, TCP4 + tlv(5, b"u" * 129)), "unique ID TLV of 129 bytes, more than 128"),
    ("v2-netns-not-ascii", v2(1, 0x11, TCP4 + tlv(0x30, "ñ".encode())), "netns TLV is not valid ASCII"),
    ("v2-aws-newline", v2(1, 0x11, TCP4 + tlv(0xEA, b"\x01vpce\n")), "AWS VPC endpoint TLV contains control"),
    ("v2-duplicate-alpn", v2(1, 0x11, TCP4 + tlv(1, b"h2") + tlv(1, b"h2")), "TLV 0x01 appears twice"),
    ("v2-duplicate-authority", v2(1, 0x11, TCP4 + tlv(2, b"a") + tlv(2, b"b")), "TLV 0x02 appears twice"),
    (
        "v2-ssl-too-short",
        v2(1, 0x11, TCP4 + tlv(0x20, b"\x01\x00\x00\x00")),
        "SSL TLV of 4 bytes, needs at least 5",
    ),
    (
        "v2-ssl-sub-tlv-overruns",
        v2(1, 0x11, TCP4 + ssl_tlv(1, 0, b"\x21\x00\x09TLSv1.3")),
        "SSL sub-TLV 0x21 overruns its container",
    ),
    (
        "v2-ssl-stray-byte",
        v2(1, 0x11, TCP4 + ssl_tlv(1, 0, b"\x21")),
        "1 stray bytes after the last SSL sub-TLV",
    ),
    (
        "v2-ssl-sub-tlv-overruns-the-header",
        v2(1, 0x11, TCP4 + b"\x20\x00\x10" + b"\x01\x00\x00\x00\x00" + b"\x21\x00\x03TLS"),
        "TLV 0x20 overruns its container",
    ),
    (
        "v2-ssl-cn-not-utf8",
        v2(1, 0x11, TCP4 + ssl_tlv(3, 0, tlv(0x22, b"\xc3"))),
        "CN sub-TLV is not valid UTF-8",
    ),
    (
        "v2-ssl-cn-newline",
        v2(1, 0x11, TCP4 + ssl_tlv(3, 0, tlv(0x22, b"a\nb"))),
        "CN sub-TLV contains control",
    ),
    (
        "v2-ssl-version-utf8",
        v2(1, 0x11, TCP4 + ssl_tlv(1, 0, tlv(0x21, "TLSv1.3é".encode()))),
        "not valid ASCII",
    ),
    (
        "v2-ssl-duplicate-version",
        v2(1, 0x11, TCP4 + ssl_tlv(1, 0, tlv(0x21, b"TLSv1.2"), tlv(0x21, b"TLSv1.3"))),
        "SSL sub-TLV 0x21 appears twice",
    ),
    ("v2-crc-wrong-size", v2(1, 0x11, TCP4 + tlv(3, b"\x00\x00\x00")), "CRC32C TLV of 3 bytes, expected 4"),
    ("v2-crc-mismatch", with_crc(0x11, TCP4)[:-1] + b"\x00", "CRC32C checksum mismatch"),
    (
        "v2-crc-covers-addresses",
        with_crc(0x11, TCP4).replace(b"\x01\x02\x03\x04", b"\x01\x02\x03\x05"),
        "mismatch",
    ),
]

_SAFE_REASON = re.compile(r"[ -~]+")


@pytest.mark.parametrize(
    ("data", "reason"), [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED]
)
def test_malformed_preamble_is_refused_with_a_loggable_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ProxyProtocolError) as info:
        parse(data + HTTP)
    error = info.value
    assert reason in error.reason
    assert _SAFE_REASON.fullmatch(error.reason), error.reason
    assert isinstance(error, ProtocolError) and error.status == 400
    assert "ProxyProtocolError(" in repr(error)


@pytest.mark.parametrize(
    ("data", "reason"), [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED]
)
def test_no_prefix_of_a_malformed_preamble_is_accepted(data: bytes, reason: str) -> None:
    """Whatever has arrived so far: need more, or the same refusal; never a header."""
    data += HTTP
    for end in range(len(data) + 1):
        try:
            result = parse(data[:end])
        except ProxyProtocolError as exc:
            assert _SAFE_REASON.fullmatch(exc.reason)
        else:
            assert result is None, end


@pytest.mark.parametrize(
    ("data", "needed"),
    [
        (b"PROXY TCP4 " + b"1" * 200, MAX_V1_LENGTH),
        (v2(1, 0x11, b"", length=MAX_V2_LENGTH), 16),
        (v2(1, 0x11, b"", length=0xFFFF), 16),
        (b"PROXYX", 6),
        (v2(1, 0x11, TCP4, version=1), 13),
        (v2(3, 0x11, TCP4), 13),
        (v2(1, 0x51, TCP4), 14),
    ],
    ids=["v1-overlong", "v2-oversized", "v2-largest", "v1-no-space", "v2-version", "v2-command", "v2-family"],
)
def test_errors_come_as_soon_as_the_bytes_show_them(data: bytes, needed: int) -> None:
    """Oversized or wrong headers are refused without waiting for (or buffering) the rest."""
    assert parse(data[: needed - 1]) is None
    with pytest.raises(ProxyProtocolError):
        parse(data[:needed])


def test_the_reader_never_buffers_past_its_bound() -> None:
    reader = PreambleReader("v2")
    assert reader.feed(v2(1, 0x11, b"", length=0x0FF0)[:16]) is None  # 4,096 bytes in all: allowed
    reader = PreambleReader("v2")
    with pytest.raises(ProxyProtocolError, match="4097 bytes, more than the 4096 allowed"):
        reader.feed(v2(1, 0x11, b"", length=0x0FF1)[:16])
    small = PreambleReader("auto", max_length=64)
    with pytest.raises(ProxyProtocolError, match="more than the 64 allowed"):
        small.feed(v2(1, 0x11, TCP4 + tlv(0xE0, b"x" * 40)))


def test_v1_line_bound_counts_bytes_not_reads() -> None:
    reader = PreambleReader("v1")
    line = b"PROXY UNKNOWN " + b"f" * 92
    for index in range(len(line)):
        assert reader.feed(line[index : index + 1]) is None
    assert len(line) == MAX_V1_LENGTH - 1
    with pytest.raises(ProxyProtocolError, match="no CRLF in its first 107 bytes"):
        reader.feed(b"\r\n")


# -- modes -----------------------------------------------------------------------------------

V1_LINE = b"PROXY TCP4 1.2.3.4 5.6.7.8 1000 80\r\n"
V2_HEADER = v2(1, 0x11, TCP4)


@pytest.mark.parametrize(
    ("mode", "data", "accepted"),
    [
        ("v1", V1_LINE, True),
        ("v1", V2_HEADER, False),
        ("v2", V2_HEADER, True),
        ("v2", V1_LINE, False),
        ("auto", V1_LINE, True),
        ("auto", V2_HEADER, True),
    ],
)
def test_mode_decides_which_versions_are_accepted(mode: str, data: bytes, accepted: bool) -> None:
    reader = PreambleReader(mode)
    if accepted:
        assert reader.feed(data + HTTP) is not None
        assert reader.rest == HTTP
    else:
        with pytest.raises(ProxyProtocolError, match=r"PROXY protocol v\d header where v\d is expected"):
            reader.feed(data + HTTP)


def test_versions_for() -> None:
    assert versions_for("v1") == {1}
    assert versions_for("v2") == {2}
    assert versions_for("auto") == {1, 2}
    with pytest.raises(ValueError, match="one of v1, v2, auto"):
        versions_for("off")
    with pytest.raises(ValueError):
        PreambleReader("on")


# -- detection --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", Detection.NEED_MORE),
        (b"P", Detection.NEED_MORE),
        (b"PROX", Detection.NEED_MORE),
        (b"PROXY", Detection.V1),
        (b"PROXY TCP4", Detection.V1),
        (b"PROXYZ", Detection.V1),  # then refused by parse(): no space
        (b"\r", Detection.NEED_MORE),
        (b"\r\n\r\n", Detection.NEED_MORE),
        (V2_SIGNATURE[:11], Detection.NEED_MORE),
        (V2_SIGNATURE, Detection.V2),
        (V2_HEADER, Detection.V2),
        (V2_SIGNATURE[:5] + b"X", Detection.NONE),
        (b"\r\n\r\nGET / HTTP/1.1\r\n", Detection.NONE),
        (b"\r\nGET", Detection.NONE),
        (b"G", Detection.NONE),
        (b"GET / HTTP/1.1\r\n", Detection.NONE),
        (b"POST", Detection.NONE),
        (b"PRI * HTTP/2.0\r\n", Detection.NONE),
        (b"PR", Detection.NEED_MORE),
        (b"PRO", Detection.NEED_MORE),
        (b"PROP", Detection.NONE),  # PROPFIND
        (b"proxy", Detection.NONE),
        (b"\x16\x03\x01", Detection.NONE),
    ],
)
def test_detect(data: bytes, expected: Detection) -> None:
    assert detect(data) is expected


def test_detect_every_prefix_of_valid_preambles() -> None:
    for _name, preamble, _ in VALID:
        for end in range(len(preamble) + 1):
            kind = detect(preamble[:end])
            assert kind is not Detection.NONE
            if end >= 12 or (end >= 5 and preamble.startswith(b"PROXY")):
                assert kind in (Detection.V1, Detection.V2)


# -- what a connection takes from a header ----------------------------------------------------


def test_remote_server_and_scheme() -> None:
    header = parse(v2(1, 0x21, inet6("2001:db8::7", "2001:db8::1", 40000, 443)))
    assert header is not None
    assert header.remote == ("2001:db8::7", "40000")
    assert header.server == ("2001:db8::1", "443")
    assert header.scheme is None


def test_local_keeps_the_real_peer() -> None:
    for data in (b"PROXY UNKNOWN\r\n", v2(0, 0x00), v2(1, 0x00)):
        header = parse(data)
        assert header is not None and header.local
        assert header.remote is None
        assert header.server is None
        assert header.scheme is None


def test_unix_client_has_no_address() -> None:
    header = parse(v2(1, 0x31, unix(b"/tmp/a", b"/tmp/b")))
    assert header is not None
    assert header.remote == ("", "")
    assert header.server is None


@pytest.mark.parametrize(
    ("client", "verify", "scheme", "cert_conn", "cert_sess", "verified"),
    [
        (0x00, 0, None, False, False, False),  # plain TCP at the proxy
        (0x01, 1, "https", False, False, False),  # TLS, no client certificate
        (0x03, 0, "https", True, False, True),  # TLS + verified certificate on this connection
        (0x05, 0, "https", False, True, True),  # certificate earlier in the session
        (0x03, 18, "https", True, False, False),  # certificate that failed verification
    ],
)
def test_ssl_tlv_flags(
    client: int, verify: int, scheme: str | None, cert_conn: bool, cert_sess: bool, verified: bool
) -> None:
    header = parse(v2(1, 0x11, TCP4 + ssl_tlv(client, verify, tlv(0x21, b"TLSv1.2"))))
    assert header is not None and header.ssl is not None
    assert header.scheme == scheme
    assert header.ssl.client_ssl is (scheme == "https")
    assert header.ssl.cert_conn is cert_conn
    assert header.ssl.cert_sess is cert_sess
    assert header.ssl.cert_verified is verified
    assert header.ssl.verify == verify
    assert header.ssl.version == "TLSv1.2"


def test_crc32c_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # RFC 3720 B.4 / the CRC catalogue's check value
    assert crc32c(b"") == 0


def test_header_is_frozen() -> None:
    header = parse(V1_LINE)
    assert isinstance(header, ProxyHeader)
    with pytest.raises(AttributeError):
        header.local = True  # type: ignore[misc]


# -- properties -------------------------------------------------------------------------------


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    """Anything at all gives need-more, a header within the bytes, or a loggable refusal."""
    for candidate in (data, b"PROXY " + data, V2_SIGNATURE + data, V2_SIGNATURE + b"\x21" + data):
        try:
            header = parse(candidate)
        except ProxyProtocolError as exc:
            assert _SAFE_REASON.fullmatch(exc.reason)
        else:
            assert header is None or 0 < header.length <= len(candidate)


ipv4s = st.ip_addresses(v=4).map(str)
ipv6s = st.ip_addresses(v=6)
ports = st.integers(0, 65535)


@given(ipv4s, ipv4s, ports, ports, st.integers(0, len(HTTP)))
def test_v1_tcp4_round_trip(src: str, dst: str, sport: int, dport: int, split: int) -> None:
    line = f"PROXY TCP4 {src} {dst} {sport} {dport}\r\n".encode()
    reader = PreambleReader("v1")
    data = line + HTTP
    assert reader.feed(data[: len(line) - 1]) is None
    header = reader.feed(data[len(line) - 1 : len(line) + split])
    assert header is not None
    assert header.source == (src, sport) and header.destination == (dst, dport)
    assert reader.rest == HTTP[:split]


@given(ipv6s, ipv6s, ports, ports)
def test_v1_tcp6_round_trip(
    src: ipaddress.IPv6Address, dst: ipaddress.IPv6Address, sport: int, dport: int
) -> None:
    # The longest form a proxy writes: eight groups of four hex digits (Python 3.13's
    # ``exploded`` writes an IPv4-mapped address with a dotted tail, which is longer).
    full = ":".join(f"{group:04x}" for group in struct.unpack("!8H", src.packed))
    for text in (src.compressed, full, full.upper()):
        header = parse(f"PROXY TCP6 {text} {dst.compressed} {sport} {dport}\r\n".encode())
        assert header is not None and isinstance(header.source, InetAddress)
        assert ipaddress.IPv6Address(header.source.host) == src
        assert header.source.port == sport
        assert header.destination is not None and ipaddress.IPv6Address(header.destination[0]) == dst


@given(
    st.one_of(
        st.tuples(st.just(0x11), ipv4s, ipv4s),
        st.tuples(st.just(0x21), ipv6s.map(str), ipv6s.map(str)),
    ),
    ports,
    ports,
    # Custom types the parser passes through: AWS's (0xEA) is decoded and validated.
    st.lists(
        st.tuples(st.integers(0xE0, 0xEF).filter(lambda kind: kind != PP2_TYPE_AWS), st.binary(max_size=40)),
        max_size=5,
    ),
    st.data(),
)
def test_v2_round_trip_at_a_random_split(
    addresses: tuple[int, str, str],
    sport: int,
    dport: int,
    custom: list[tuple[int, bytes]],
    data: st.DataObject,
) -> None:
    fam, src, dst = addresses
    pack = inet4 if fam == 0x11 else inet6
    header_bytes = v2(1, fam, pack(src, dst, sport, dport) + b"".join(tlv(k, v) for k, v in custom))
    stream = header_bytes + HTTP
    split = data.draw(st.integers(0, len(stream)))
    reader = PreambleReader("v2")
    first = reader.feed(stream[:split])
    header = first or reader.feed(stream[split:])
    assert header is not None and header.length == len(header_bytes)
    assert isinstance(header.source, InetAddress) and isinstance(header.destination, InetAddress)
    assert ipaddress.ip_address(header.source.host) == ipaddress.ip_address(src)
    assert ipaddress.ip_address(header.destination.host) == ipaddress.ip_address(dst)
    assert (header.source.port, header.destination.port) == (sport, dport)
    assert header.tlvs == tuple(custom)
    assert reader.rest == (
        stream[len(header_bytes) :] if first is None else stream[len(header_bytes) : split]
    )
