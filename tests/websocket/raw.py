"""A WebSocket client that controls every byte it sends, over a plain socket.

Frames are built by hand (masked or not, any opcode, RSV bits, fragment
boundaries, TCP write boundaries), and so is the handshake request, so a test
can leave a header out. What the server sends is read by wsproto's client-side
frame parser (``wsproto.frame_protocol.FrameProtocol``): an implementation
that is not greenserve's checks every server frame (unmasked, valid opcodes
and close codes, text that is valid UTF-8), and a frame it refuses fails the
test instead of passing for a close.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import time
from collections import deque
from dataclasses import dataclass

from wsproto.frame_protocol import Frame, FrameProtocol, Opcode

CONTINUATION, TEXT, BINARY = 0x0, 0x1, 0x2
CLOSE, PING, PONG = 0x8, 0x9, 0xA


def mask(payload: bytes, key: bytes) -> bytes:
    """RFC 6455 5.3 masking (one big-integer XOR: fast enough for megabytes)."""
    if not payload:
        return b""
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(payload), "big")


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    key: bytes | None = None,
) -> bytes:
    """One frame, exactly as asked (``rsv``: the three RSV bits, 0-7)."""
    head = bytearray([(0x80 if fin else 0) | (rsv << 4) | opcode])
    bit = 0x80 if masked else 0
    size = len(payload)
    if size < 126:
        head.append(bit | size)
    elif size < 65536:
        head.append(bit | 126)
        head += size.to_bytes(2, "big")
    else:
        head.append(bit | 127)
        head += size.to_bytes(8, "big")
    if not masked:
        return bytes(head) + payload
    key = key or os.urandom(4)
    return bytes(head) + key + mask(payload, key)


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


def fragments(opcode: int, parts: list[bytes]) -> list[bytes]:
    """One message as consecutive frames: ``opcode`` first, continuations after, FIN on the last."""
    last = len(parts) - 1
    return [frame(opcode if i == 0 else CONTINUATION, part, fin=i == last) for i, part in enumerate(parts)]


GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3


def handshake_request(path: str, key: bytes, headers: list[tuple[str, str | None]] | None = None) -> bytes:
    """The upgrade request; ``headers`` override (value None: leave out) or add to the usual ones."""
    fields: dict[str, str | None] = {
        "Host": "localhost",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key.decode(),
        "Sec-WebSocket-Version": "13",
    }
    for name, value in headers or []:
        fields[name] = value
    lines = [f"GET {path} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in fields.items() if value is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass
class Message:
    """A whole message, or a control frame, as the client received it."""

    opcode: Opcode
    data: str | bytes
    #: For a close frame: its code and reason.
    code: int | None = None
    reason: str = ""


@dataclass
class Closed:
    """How the connection ended for the client: the server's close frame (code None: none) and TCP."""

    code: int | None
    reason: str | None
    #: The server closed the TCP connection (in time).
    eof: bool


class RawClient:
    """One WebSocket over a plain socket (see the module docstring)."""

    def __init__(
        self,
        address: tuple[str, int],
        path: str = "/echo",
        *,
        timeout: float = 5.0,
        headers: list[tuple[str, str | None]] | None = None,
    ) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.frames: deque[Frame] = deque()
        self.eof = False
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(handshake_request(path, key, headers))
        head, rest = self._read_head(timeout)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        #: The response's headers, names in lower case.
        fields = (line.partition(":") for line in lines[1:])
        self.headers = {name.strip().lower(): value.strip() for name, _, value in fields}
        assert self.status == 101, f"the upgrade was refused: {head!r}"
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        assert self.headers.get("sec-websocket-accept") == accept, head
        self.proto = FrameProtocol(client=True, extensions=[])
        if rest:
            self.proto.receive_bytes(rest)

    def _read_head(self, timeout: float) -> tuple[bytes, bytes]:
        data = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in data:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            chunk = self.sock.recv(65536)
            assert chunk, f"the server closed the connection during the handshake: {data!r}"
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        return head, rest

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    # -- sending -------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def drop(self, reset: bool = False) -> None:
        """End the TCP connection without a close frame (``reset``: with an RST, not a FIN)."""
        if reset:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.sock.close()

    # -- receiving -----------------------------------------------------------------------

    def _frame(self, deadline: float) -> Frame | None:
        """The next frame from the server (None once it closed TCP); AssertionError at ``deadline``."""
        while not self.frames:
            self.frames.extend(self.proto.received_frames())  # ParseFailed: the server sent a bad frame
            if self.frames:
                break
            if self.eof:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("nothing from the server in time")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            except TimeoutError:
                continue
            if data:
                self.proto.receive_bytes(data)
            else:
                self.eof = True
        return self.frames.popleft()

    def receive(self, timeout: float | None = None, skip_pings: bool = True) -> Message | None:
        """The next whole message or control frame (server pings skipped unless asked); None at EOF."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        parts: list = []
        opcode: Opcode | None = None
        while True:
            received = self._frame(deadline)
            if received is None:
                assert not parts, "the server closed TCP in the middle of a message"
                return None
            if received.opcode is Opcode.PING and skip_pings:
                continue
            if received.opcode is Opcode.CLOSE:
                code, reason = received.payload  # type: ignore[misc]
                return Message(Opcode.CLOSE, b"", int(code), reason)
            if received.opcode in (Opcode.PING, Opcode.PONG):
                return Message(received.opcode, bytes(received.payload))  # type: ignore[arg-type]
            opcode = opcode or received.opcode  # the first frame's opcode (continuations: the message's)
            parts.append(received.payload)
            if received.message_finished:
                if opcode is Opcode.TEXT:
                    return Message(opcode, "".join(parts))
                return Message(opcode, b"".join(bytes(part) for part in parts))

    def message(self, timeout: float | None = None) -> str | bytes:
        """The next whole data message (text as str, binary as bytes)."""
        received = self.receive(timeout)
        assert received is not None and received.opcode in (Opcode.TEXT, Opcode.BINARY), received
        return received.data

    def pong(self, timeout: float | None = None) -> bytes:
        received = self.receive(timeout)
        assert received is not None and received.opcode is Opcode.PONG, received
        return bytes(received.data)  # type: ignore[arg-type]

    def closed(self, timeout: float | None = None, answer: bool = True) -> Closed:
        """Read until the server's close frame and then its TCP close (messages before are skipped).

        ``answer``: send the close frame back, as a client does. A ``Closed``
        with ``eof`` False: the server had not closed TCP ``timeout`` seconds
        after the close frame; with ``code`` None: it closed TCP without one.
        """
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                received = self.receive(max(deadline - time.monotonic(), 0.001))
            except AssertionError:
                return Closed(None, None, eof=False)
            if received is None:
                return Closed(None, None, eof=True)
            if received.opcode is Opcode.CLOSE:
                break
        if answer:
            try:
                self.sock.sendall(frame(CLOSE, close_payload(received.code or 1000)))
            except OSError:
                pass
        eof = self.wait_eof(max(deadline - time.monotonic(), 0.001))
        return Closed(received.code, received.reason, eof)

    def wait_eof(self, timeout: float) -> bool:
        """True once the server has closed TCP (whatever it sends meanwhile is discarded)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            except TimeoutError:
                return False
            if not data:
                self.eof = True
        return True
