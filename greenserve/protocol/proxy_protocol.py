"""The PROXY protocol preamble, versions 1 and 2 (HAProxy's proxy-protocol.txt), sans-IO.

A load balancer in TCP mode (HAProxy ``send-proxy``/``send-proxy-v2``, an AWS
Network Load Balancer, stunnel) cannot add ``X-Forwarded-For``: it prepends
one preamble to the connection instead, saying who the client was. This
module reads that preamble from the first bytes of a connection and nothing
else: no socket, no clock.

- :func:`parse` takes the bytes received so far and returns ``None`` (need
  more), a :class:`ProxyHeader` (whose ``length`` says where the first HTTP
  byte is) or raises :class:`ProxyProtocolError`.
- :class:`PreambleReader` does the buffering for a connection that must send
  a preamble, within a fixed bound.
- :func:`detect` says whether the first bytes could be a preamble at all, so
  that a peer which may not send one is refused when it tries, and a peer
  which must send one is refused as soon as it sends HTTP instead.

Everything is strict, as the specification asks ("any sequence which does
not exactly match the protocol must be discarded"): a receiver that guessed
would let a client forge its address. Error reasons are fixed texts with at
most a number in them, never bytes from the wire, so they are safe to log.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass, replace
from functools import cache
from typing import NamedTuple

from greenserve.errors import ProtocolError

__all__ = [
    "MAX_V1_LENGTH",
    "MAX_V2_LENGTH",
    "MODES",
    "V2_SIGNATURE",
    "Detection",
    "Family",
    "InetAddress",
    "PreambleReader",
    "ProxyHeader",
    "ProxyProtocolError",
    "SSLInfo",
    "Transport",
    "UnixAddress",
    "crc32c",
    "detect",
    "parse",
    "versions_for",
]

#: The v1 line, CRLF included, is never longer than this (spec section 2.1).
MAX_V1_LENGTH = 107

#: The largest v2 header accepted, the 16 fixed bytes included. The header
#: announces its own length (up to 65,551 bytes); this bound keeps a trusted
#: but broken sender from making each connection buffer 64 KiB. The TLVs
#: HAProxy sends (SSL with version, cipher, CN and algorithms, ALPN,
#: authority, a unique ID of up to 128 bytes) or AWS's VPC endpoint TLV come to
#: a few hundred bytes; AF_UNIX addresses take 216.
MAX_V2_LENGTH = 4096

#: The twelve bytes every v2 header starts with.
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"

_V1_PREFIX = b"PROXY"
_NOT_PRINTABLE = re.compile(rb"[^\x20-\x7e]")
_V2_FIXED = 16
#: "PROXY UNKNOWN\r\n": no preamble is shorter.
_SHORTEST = 15

#: ``--proxy-protocol`` values that read a preamble, and the versions each accepts.
MODES: dict[str, frozenset[int]] = {
    "v1": frozenset((1,)),
    "v2": frozenset((2,)),
    "auto": frozenset((1, 2)),
}

# v2 TLV types (spec section 2.2).
PP2_TYPE_ALPN = 0x01
PP2_TYPE_AUTHORITY = 0x02
PP2_TYPE_CRC32C = 0x03
PP2_TYPE_NOOP = 0x04
PP2_TYPE_UNIQUE_ID = 0x05
PP2_TYPE_SSL = 0x20
PP2_SUBTYPE_SSL_VERSION = 0x21
PP2_SUBTYPE_SSL_CN = 0x22
PP2_SUBTYPE_SSL_CIPHER = 0x23
PP2_SUBTYPE_SSL_SIG_ALG = 0x24
PP2_SUBTYPE_SSL_KEY_ALG = 0x25
PP2_TYPE_NETNS = 0x30
#: AWS's custom TLV (in the 0xE0-0xEF application range); subtype 0x01 is the
#: VPC endpoint ID of a PrivateLink connection.
PP2_TYPE_AWS = 0xEA
PP2_SUBTYPE_AWS_VPCE_ID = 0x01

# PP2_TYPE_SSL client bits.
PP2_CLIENT_SSL = 0x01
PP2_CLIENT_CERT_CONN = 0x02
PP2_CLIENT_CERT_SESS = 0x04

#: The unique ID is "an opaque byte sequence of up to 128 bytes".
_MAX_UNIQUE_ID = 128


class ProxyProtocolError(ProtocolError):
    """A preamble that is malformed, missing, unwanted or too long.

    The connection should be closed without an answer (the sender is a proxy,
    or a client that is not allowed to speak for others). ``reason`` holds no
    bytes from the wire: it can go to a log as it is.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(400, reason)

    def __repr__(self) -> str:
        return f"ProxyProtocolError({self.reason!r})"


class Detection(enum.Enum):
    """What the first bytes of a connection are, as far as :func:`detect` can tell."""

    #: Too few bytes to tell (they are the start of a signature).
    NEED_MORE = "need more"
    #: Not a PROXY preamble: the bytes belong to the HTTP parser.
    NONE = "none"
    #: Starts with ``PROXY``: a version 1 line.
    V1 = "v1"
    #: Starts with the twelve-byte version 2 signature.
    V2 = "v2"


class Family(enum.Enum):
    """The address family of the proxied connection."""

    UNSPEC = "UNSPEC"
    INET = "INET"
    INET6 = "INET6"
    UNIX = "UNIX"


class Transport(enum.Enum):
    """The transport of the proxied connection (v1 is always STREAM, or UNSPEC for UNKNOWN)."""

    UNSPEC = "UNSPEC"
    STREAM = "STREAM"
    DGRAM = "DGRAM"


class InetAddress(NamedTuple):
    """An IPv4 or IPv6 endpoint; ``host`` is in canonical text form."""

    host: str
    port: int


class UnixAddress(NamedTuple):
    """An AF_UNIX endpoint: the socket path as raw bytes (abstract names start with NUL)."""

    path: bytes


@dataclass(frozen=True, slots=True)
class SSLInfo:
    """The PP2_TYPE_SSL TLV: how the client reached the proxy over TLS."""

    #: PP2_CLIENT_* bits.
    client: int
    #: 0 when the client presented a certificate and it was verified.
    verify: int
    #: e.g. ``"TLSv1.3"`` (PP2_SUBTYPE_SSL_VERSION).
    version: str | None = None
    #: The client certificate's subject Common Name (PP2_SUBTYPE_SSL_CN).
    cn: str | None = None
    #: e.g. ``"ECDHE-RSA-AES128-GCM-SHA256"`` (PP2_SUBTYPE_SSL_CIPHER).
    cipher: str | None = None
    #: The signature algorithm of the proxy's certificate (PP2_SUBTYPE_SSL_SIG_ALG).
    sig_alg: str | None = None
    #: The key algorithm of the proxy's certificate (PP2_SUBTYPE_SSL_KEY_ALG).
    key_alg: str | None = None
    #: Every sub-TLV as (type, value), the decoded ones included, in order.
    tlvs: tuple[tuple[int, bytes], ...] = ()

    @property
    def client_ssl(self) -> bool:
        """The client connected over SSL/TLS (PP2_CLIENT_SSL)."""
        return bool(self.client & PP2_CLIENT_SSL)

    @property
    def cert_conn(self) -> bool:
        """The client presented a certificate on this connection (PP2_CLIENT_CERT_CONN)."""
        return bool(self.client & PP2_CLIENT_CERT_CONN)

    @property
    def cert_sess(self) -> bool:
        """The client presented a certificate at least once in this TLS session."""
        return bool(self.client & PP2_CLIENT_CERT_SESS)

    @property
    def cert_verified(self) -> bool:
        """A client certificate was presented and the proxy verified it."""
        return bool(self.client & (PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS)) and self.verify == 0


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A complete, valid preamble."""

    #: 1 (text line) or 2 (binary).
    version: int
    #: How many bytes the preamble took; what follows is the first HTTP bytes.
    length: int
    #: True when the real connection's endpoints stand: v2 LOCAL (the proxy's
    #: own health check), v2 with an unspecified family, v1 ``UNKNOWN``.
    local: bool
    family: Family = Family.UNSPEC
    transport: Transport = Transport.UNSPEC
    #: The client's endpoint (None when ``local``).
    source: InetAddress | UnixAddress | None = None
    #: The endpoint the client connected to, on the proxy (None when ``local``).
    destination: InetAddress | UnixAddress | None = None
    #: PP2_TYPE_ALPN: the protocol the client negotiated with the proxy, e.g. ``b"h2"``.
    alpn: bytes | None = None
    #: PP2_TYPE_AUTHORITY: the host name the client asked for (TLS SNI).
    authority: str | None = None
    #: PP2_TYPE_UNIQUE_ID: the proxy's opaque ID of this connection (up to 128 bytes).
    unique_id: bytes | None = None
    #: PP2_TYPE_SSL, decoded.
    ssl: SSLInfo | None = None
    #: PP2_TYPE_NETNS: the proxy-side network namespace name.
    netns: str | None = None
    #: AWS PrivateLink: the VPC endpoint ID (PP2_TYPE_AWS, subtype 0x01).
    aws_vpce_id: str | None = None
    #: Every top-level TLV as (type, value), in order, the decoded ones included,
    #: so that application-specific types (0xE0-0xEF) can be read.
    tlvs: tuple[tuple[int, bytes], ...] = ()

    @property
    def remote(self) -> tuple[str, str] | None:
        """``(REMOTE_ADDR, REMOTE_PORT)`` for the connection, or None to keep the socket's peer.

        An AF_UNIX client gives ``("", "")``, as a peer of a Unix-socket
        listener does: a path is not an address.
        """
        source = self.source
        if source is None:
            return None
        if isinstance(source, UnixAddress):
            return ("", "")
        return (source.host, str(source.port))

    @property
    def server(self) -> tuple[str, str] | None:
        """``(SERVER_NAME, SERVER_PORT)``: where the client connected, or None to keep the listener's."""
        destination = self.destination
        if destination is None or isinstance(destination, UnixAddress):
            return None
        return (destination.host, str(destination.port))

    @property
    def scheme(self) -> str | None:
        """``"https"`` when the proxy says the client used TLS (PP2_TYPE_SSL), else None."""
        if self.ssl is not None and self.ssl.client_ssl:
            return "https"
        return None


# -- detection -------------------------------------------------------------------------


def detect(data: bytes) -> Detection:
    """Could ``data``, the first bytes of a connection, be a PROXY preamble?

    ``V1``/``V2`` as soon as the signature is complete (``PROXY``, or the
    twelve v2 bytes), ``NONE`` as soon as a byte departs from both, and
    ``NEED_MORE`` while ``data`` is a proper prefix of a signature. An HTTP
    request is told apart by its first byte, unless it starts with blank
    lines (``\\r\\n``), which are also how the v2 signature starts.
    """
    if data[:12] == V2_SIGNATURE:
        return Detection.V2
    if data[:5] == _V1_PREFIX:
        return Detection.V1
    if V2_SIGNATURE.startswith(data[:12]) or _V1_PREFIX.startswith(data[:5]):
        return Detection.NEED_MORE
    return Detection.NONE


def versions_for(mode: str) -> frozenset[int]:
    """The versions a ``--proxy-protocol`` mode accepts (``v1``, ``v2`` or ``auto``)."""
    try:
        return MODES[mode]
    except KeyError:
        raise ValueError(f"proxy protocol mode must be one of {', '.join(MODES)}, got {mode!r}") from None


# -- parsing ---------------------------------------------------------------------------


def parse(
    data: bytes, versions: frozenset[int] = MODES["auto"], max_length: int = MAX_V2_LENGTH
) -> ProxyHeader | None:
    """The preamble at the start of ``data``, or None until it is complete.

    ``data`` is everything received on the connection so far; call again with
    more appended after None. ``versions`` are the versions the listener
    accepts: any other, or bytes that are no preamble at all, raise
    :class:`ProxyProtocolError`, as does anything malformed. Errors are
    raised as early as the bytes show them, not only once the header is whole.
    """
    kind = detect(data)
    if kind is Detection.NEED_MORE:
        return None
    if kind is Detection.NONE:
        raise ProxyProtocolError("expected a PROXY protocol header")
    version = 1 if kind is Detection.V1 else 2
    if version not in versions:
        allowed = " or ".join(f"v{v}" for v in sorted(versions))
        raise ProxyProtocolError(f"PROXY protocol v{version} header where {allowed} is expected")
    if version == 1:
        return _parse_v1(data)
    return _parse_v2(data, max_length)


def _parse_v1(data: bytes) -> ProxyHeader | None:
    window = data[:MAX_V1_LENGTH]
    cr = window.find(b"\r")
    lf = window.find(b"\n")
    if lf >= 0 and (cr < 0 or lf < cr):
        raise ProxyProtocolError("PROXY v1 line ends with a bare LF")
    if cr < 0 or cr + 1 >= len(window):
        if len(window) >= MAX_V1_LENGTH:
            raise ProxyProtocolError(f"PROXY v1 line has no CRLF in its first {MAX_V1_LENGTH} bytes")
        if len(data) > 5 and data[5] != 0x20:
            raise ProxyProtocolError("PROXY v1 line: expected a space after PROXY")
        return None
    if window[cr + 1] != 0x0A:
        raise ProxyProtocolError("PROXY v1 line has a CR not followed by LF")
    line = window[:cr]
    length = cr + 2
    if line[5:6] != b" ":
        raise ProxyProtocolError("PROXY v1 line: expected a space after PROXY")
    rest = line[6:]
    if rest == b"UNKNOWN" or rest.startswith(b"UNKNOWN "):
        # "the receiver must ignore anything presented before the CRLF"
        return ProxyHeader(version=1, length=length, local=True)
    if _NOT_PRINTABLE.search(rest):
        raise ProxyProtocolError("PROXY v1 line has a byte outside printable US-ASCII")
    fields = rest.split(b" ")
    if fields[0] == b"TCP4":
        family, parse_host = Family.INET, _v1_ipv4
    elif fields[0] == b"TCP6":
        family, parse_host = Family.INET6, _v1_ipv6
    else:
        raise ProxyProtocolError("PROXY v1 line: the protocol must be TCP4, TCP6 or UNKNOWN")
    if len(fields) != 5:
        raise ProxyProtocolError("PROXY v1 line: expected 'TCP4|TCP6 SRC DST SPORT DPORT' with single spaces")
    src, dst, sport, dport = (item.decode("ascii") for item in fields[1:])
    source = InetAddress(parse_host(src, "source"), _v1_port(sport, "source"))
    destination = InetAddress(parse_host(dst, "destination"), _v1_port(dport, "destination"))
    return ProxyHeader(
        version=1,
        length=length,
        local=False,
        family=family,
        transport=Transport.STREAM,
        source=source,
        destination=destination,
    )


def _v1_ipv4(text: str, which: str) -> str:
    """Four decimal numbers 0-255, no leading zeros (they could mean octal)."""
    parts = text.split(".")
    if len(parts) != 4:
        raise ProxyProtocolError(f"PROXY v1 line: the {which} address is not an IPv4 address")
    for part in parts:
        if (
            not part
            or len(part) > 3
            or not part.isascii()
            or not part.isdigit()
            or (part[0] == "0" and len(part) > 1)
            or int(part) > 255
        ):
            raise ProxyProtocolError(f"PROXY v1 line: the {which} address is not an IPv4 address")
    return text


def _v1_ipv6(text: str, which: str) -> str:
    # ipaddress accepts a zone ("%eth0"); the PROXY line does not.
    if "%" in text or len(text) > 39:
        raise ProxyProtocolError(f"PROXY v1 line: the {which} address is not an IPv6 address")
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        raise ProxyProtocolError(f"PROXY v1 line: the {which} address is not an IPv6 address") from None
    return _ipv6_text(address)


def _v1_port(text: str, which: str) -> int:
    if (
        not text
        or len(text) > 5
        or not text.isascii()
        or not text.isdigit()
        or (text[0] == "0" and len(text) > 1)
        or int(text) > 65535
    ):
        raise ProxyProtocolError(f"PROXY v1 line: the {which} port is not a number from 0 to 65535")
    return int(text)


def _ipv6_text(address: ipaddress.IPv6Address) -> str:
    """Compressed lower-case text; IPv4-mapped addresses as ``::ffff:a.b.c.d`` on every Python."""
    mapped = address.ipv4_mapped
    if mapped is not None:
        return f"::ffff:{mapped}"
    return address.compressed


_V2_FAMILIES = {
    0x11: (Family.INET, Transport.STREAM, 12),
    0x12: (Family.INET, Transport.DGRAM, 12),
    0x21: (Family.INET6, Transport.STREAM, 36),
    0x22: (Family.INET6, Transport.DGRAM, 36),
    0x31: (Family.UNIX, Transport.STREAM, 216),
    0x32: (Family.UNIX, Transport.DGRAM, 216),
}


def _parse_v2(data: bytes, max_length: int) -> ProxyHeader | None:
    if len(data) > 12:
        version, command = data[12] >> 4, data[12] & 0x0F
        if version != 2:
            raise ProxyProtocolError(f"PROXY v2 header with version {version}, expected 2")
        if command > 1:
            raise ProxyProtocolError(f"PROXY v2 header with unknown command {command:#x}")
    # The family of a LOCAL header "is ignored"; a PROXY header must name a known one.
    if len(data) > 13 and data[12] & 0x0F == 1 and data[13] != 0x00 and data[13] not in _V2_FAMILIES:
        raise ProxyProtocolError(f"PROXY v2 header with unknown family/transport {data[13]:#04x}")
    if len(data) < _V2_FIXED:
        return None
    block = int.from_bytes(data[14:16], "big")
    length = _V2_FIXED + block
    if length > max_length:
        raise ProxyProtocolError(f"PROXY v2 header of {length} bytes, more than the {max_length} allowed")
    if len(data) < length:
        return None
    header = data[:length]
    if data[12] & 0x0F == 0:
        # LOCAL: "use the real connection endpoints and discard the protocol
        # block including the family which is ignored".
        return ProxyHeader(version=2, length=length, local=True)
    fam = data[13]
    if fam == 0x00:
        # PROXY with UNSPEC: keep the real endpoints, ignore the address block.
        return ProxyHeader(version=2, length=length, local=True)
    family, transport, size = _V2_FAMILIES[fam]
    if block < size:
        raise ProxyProtocolError(
            f"PROXY v2 header: address block of {block} bytes, {family.value} needs {size}"
        )
    addresses = header[_V2_FIXED : _V2_FIXED + size]
    source: InetAddress | UnixAddress
    destination: InetAddress | UnixAddress
    if family is Family.INET:
        source = _inet(str(ipaddress.IPv4Address(addresses[0:4])), addresses[8:10])
        destination = _inet(str(ipaddress.IPv4Address(addresses[4:8])), addresses[10:12])
    elif family is Family.INET6:
        source = _inet(_ipv6_text(ipaddress.IPv6Address(addresses[0:16])), addresses[32:34])
        destination = _inet(_ipv6_text(ipaddress.IPv6Address(addresses[16:32])), addresses[34:36])
    else:
        source = UnixAddress(_unix_path(addresses[:108]))
        destination = UnixAddress(_unix_path(addresses[108:]))
    tlvs = _tlvs(header, _V2_FIXED + size, length, "TLV")
    return _with_tlvs(
        ProxyHeader(
            version=2,
            length=length,
            local=False,
            family=family,
            transport=transport,
            source=source,
            destination=destination,
        ),
        header,
        tlvs,
    )


def _inet(host: str, port: bytes) -> InetAddress:
    return InetAddress(host, int.from_bytes(port, "big"))


def _unix_path(raw: bytes) -> bytes:
    """sun_path: up to the first NUL; an abstract name (leading NUL) without its NUL padding.

    All NULs is an unnamed socket: ``b""``.
    """
    if raw[:1] == b"\x00":
        name = raw[1:].rstrip(b"\x00")
        return b"\x00" + name if name else b""
    return raw.split(b"\x00", 1)[0]


def _tlvs(header: bytes, start: int, end: int, what: str) -> list[tuple[int, int, int]]:
    """(type, value start, value end) for each TLV in ``header[start:end]``; strict about sizes."""
    found = []
    position = start
    while position < end:
        if end - position < 3:
            raise ProxyProtocolError(f"PROXY v2 header: {end - position} stray bytes after the last {what}")
        kind = header[position]
        size = int.from_bytes(header[position + 1 : position + 3], "big")
        value_start = position + 3
        position = value_start + size
        if position > end:
            raise ProxyProtocolError(f"PROXY v2 header: {what} {kind:#04x} overruns its container")
        found.append((kind, value_start, position))
    return found


def _text(value: bytes, what: str, encoding: str = "ascii") -> str:
    """A TLV string: valid in ``encoding`` and free of control characters."""
    try:
        text = value.decode(encoding)
    except UnicodeDecodeError:
        raise ProxyProtocolError(f"PROXY v2 header: {what} is not valid {encoding.upper()}") from None
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in text):
        raise ProxyProtocolError(f"PROXY v2 header: {what} contains control characters")
    return text


def _with_tlvs(header: ProxyHeader, raw: bytes, tlvs: list[tuple[int, int, int]]) -> ProxyHeader:
    decoded: dict[str, object] = {}
    seen: set[int] = set()
    for kind, start, end in tlvs:
        value = raw[start:end]
        if kind in seen and kind in _SINGLE_TLVS:
            raise ProxyProtocolError(f"PROXY v2 header: TLV {kind:#04x} appears twice")
        seen.add(kind)
        if kind == PP2_TYPE_ALPN:
            if not value:
                raise ProxyProtocolError("PROXY v2 header: empty ALPN TLV")
            decoded["alpn"] = value
        elif kind == PP2_TYPE_AUTHORITY:
            decoded["authority"] = _text(value, "the authority TLV", "utf-8")
        elif kind == PP2_TYPE_CRC32C:
            _check_crc32c(raw, start, end)
        elif kind == PP2_TYPE_UNIQUE_ID:
            if len(value) > _MAX_UNIQUE_ID:
                raise ProxyProtocolError(
                    f"PROXY v2 header: unique ID TLV of {len(value)} bytes, more than {_MAX_UNIQUE_ID}"
                )
            decoded["unique_id"] = value
        elif kind == PP2_TYPE_SSL:
            decoded["ssl"] = _ssl(raw, start, end)
        elif kind == PP2_TYPE_NETNS:
            decoded["netns"] = _text(value, "the netns TLV")
        elif kind == PP2_TYPE_AWS and value[:1] == bytes((PP2_SUBTYPE_AWS_VPCE_ID,)):
            decoded["aws_vpce_id"] = _text(value[1:], "the AWS VPC endpoint TLV")
    if not tlvs:
        return header
    values = tuple((kind, raw[start:end]) for kind, start, end in tlvs)
    return replace(header, tlvs=values, **decoded)  # type: ignore[arg-type]


#: TLV types that mean nothing when repeated: a second one is a broken sender.
_SINGLE_TLVS = frozenset(
    (PP2_TYPE_ALPN, PP2_TYPE_AUTHORITY, PP2_TYPE_CRC32C, PP2_TYPE_UNIQUE_ID, PP2_TYPE_SSL, PP2_TYPE_NETNS)
)

_SSL_TEXT = {
    PP2_SUBTYPE_SSL_VERSION: ("version", "ascii", "the SSL version sub-TLV"),
    PP2_SUBTYPE_SSL_CN: ("cn", "utf-8", "the SSL CN sub-TLV"),
    PP2_SUBTYPE_SSL_CIPHER: ("cipher", "ascii", "the SSL cipher sub-TLV"),
    PP2_SUBTYPE_SSL_SIG_ALG: ("sig_alg", "ascii", "the SSL signature algorithm sub-TLV"),
    PP2_SUBTYPE_SSL_KEY_ALG: ("key_alg", "ascii", "the SSL key algorithm sub-TLV"),
}


def _ssl(raw: bytes, start: int, end: int) -> SSLInfo:
    """PP2_TYPE_SSL: ``client`` (1 byte), ``verify`` (4 bytes), then sub-TLVs."""
    if end - start < 5:
        raise ProxyProtocolError(f"PROXY v2 header: SSL TLV of {end - start} bytes, needs at least 5")
    client = raw[start]
    verify = int.from_bytes(raw[start + 1 : start + 5], "big")
    decoded: dict[str, str] = {}
    subs = []
    for kind, sub_start, sub_end in _tlvs(raw, start + 5, end, "SSL sub-TLV"):
        value = raw[sub_start:sub_end]
        subs.append((kind, value))
        known = _SSL_TEXT.get(kind)
        if known is not None:
            name, encoding, what = known
            if name in decoded:
                raise ProxyProtocolError(f"PROXY v2 header: SSL sub-TLV {kind:#04x} appears twice")
            decoded[name] = _text(value, what, encoding)
    return SSLInfo(client=client, verify=verify, tlvs=tuple(subs), **decoded)


def _check_crc32c(raw: bytes, start: int, end: int) -> None:
    """PP2_TYPE_CRC32C: the checksum of the whole header with its own value zeroed."""
    if end - start != 4:
        raise ProxyProtocolError(f"PROXY v2 header: CRC32C TLV of {end - start} bytes, expected 4")
    expected = int.from_bytes(raw[start:end], "big")
    if crc32c(raw[:start] + b"\x00\x00\x00\x00" + raw[end:]) != expected:
        raise ProxyProtocolError("PROXY v2 header: CRC32C checksum mismatch")


@cache
def _crc32c_table() -> tuple[int, ...]:
    table = []
    for index in range(256):
        crc = index
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as RFC 4960 appendix B computes it."""
    table = _crc32c_table()
    crc = 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# -- a connection's first bytes ------------------------------------------------------------


class PreambleReader:
    """Collects a connection's first bytes until its preamble is complete.

    For a peer that must send a preamble: ``feed()`` returns None while more
    bytes are needed, then the :class:`ProxyHeader`; :attr:`rest` is what
    came after it (the start of the first HTTP request); ``feed_eof()`` when
    the peer closes first. Raises
    :class:`ProxyProtocolError` for a malformed preamble, a version the mode
    does not accept, or HTTP bytes where the preamble should be. At most
    ``max_length`` bytes are kept (107 suffice for v1).
    """

    __slots__ = ("_buffer", "_max_length", "_versions", "header", "rest")

    def __init__(self, mode: str = "auto", max_length: int = MAX_V2_LENGTH) -> None:
        self._versions = versions_for(mode)
        self._max_length = max_length
        self._buffer = b""
        #: The header, once complete.
        self.header: ProxyHeader | None = None
        #: The bytes after the preamble, once it is complete.
        self.rest = b""

    def feed(self, data: bytes) -> ProxyHeader | None:
        if self.header is not None:
            raise RuntimeError("the preamble is already complete: give further bytes to the HTTP parser")
        # parse() refuses anything longer than max_length before waiting for
        # it, so the buffer never holds more than max_length plus one recv().
        buffer = self._buffer + data if self._buffer else data
        header = parse(buffer, self._versions, self._max_length)
        if header is None:
            self._buffer = buffer
            return None
        self.header = header
        self.rest = buffer[header.length :]
        self._buffer = b""
        return header

    def max_read(self) -> int:
        """How many bytes may be received now without reading past the preamble.

        For a TLS listener, where the bytes after the preamble are the TLS
        handshake and must stay in the socket for the TLS layer: receive at
        most this many each time (0 once the preamble is complete). The
        shortest preamble is 15 bytes; a v2 header says its length after 16;
        a v1 line is read at most two bytes at a time past its first 15, since
        it can only end with CRLF.
        """
        if self.header is not None:
            return 0
        buffer = self._buffer
        size = len(buffer)
        kind = detect(buffer)
        if kind is Detection.V2:
            if size < _V2_FIXED:
                return _V2_FIXED - size
            return _V2_FIXED + int.from_bytes(buffer[14:16], "big") - size
        if kind is Detection.V1:
            return 1 if buffer.endswith(b"\r") else max(2, _SHORTEST - size)
        return max(1, _SHORTEST - size)

    def feed_eof(self) -> None:
        """The peer closed its side before the preamble was complete: always an error.

        The specification asks receivers to reject partial headers; the reason
        says whether any of it had arrived.
        """
        if self.header is not None:
            return
        if self._buffer:
            raise ProxyProtocolError("connection closed in the middle of a PROXY protocol header")
        raise ProxyProtocolError("connection closed before a PROXY protocol header")
