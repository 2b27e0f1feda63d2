"""Unit tests for greenserve.sockets.parse_bind (no socket is opened)."""

from __future__ import annotations

import pytest

from greenserve.errors import ConfigError
from greenserve.sockets import DEFAULT_PORT, BindSpec, parse_bind, validate_binds


@pytest.mark.parametrize(
    ("spec", "host", "port"),
    [
        ("127.0.0.1:8000", "127.0.0.1", 8000),
        ("0.0.0.0:0", "0.0.0.0", 0),
        ("localhost:65535", "localhost", 65535),
        ("example.com:80", "example.com", 80),
        (" 127.0.0.1:81 ", "127.0.0.1", 81),
        (":8080", "0.0.0.0", 8080),
        ("127.0.0.1:008", "127.0.0.1", 8),
        ("[::1]:8080", "::1", 8080),
        ("[::]:0", "::", 0),
        ("[2001:db8::1]:443", "2001:db8::1", 443),
        ("[fe80::1%eth0]:80", "fe80::1%eth0", 80),
        ("[::1]", "::1", DEFAULT_PORT),
        ("localhost", "localhost", DEFAULT_PORT),
        ("10.0.0.1", "10.0.0.1", DEFAULT_PORT),
    ],
)
def test_tcp(spec: str, host: str, port: int) -> None:
    assert parse_bind(spec) == BindSpec("tcp", host=host, port=port)


def test_default_port() -> None:
    assert DEFAULT_PORT == 8000


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ("unix:/tmp/app.sock", "/tmp/app.sock"),
        ("unix:///run/app.sock", "/run/app.sock"),
        ("unix:relative.sock", "relative.sock"),
        ("unix:/tmp/with space.sock", "/tmp/with space.sock"),
        ("unix:/tmp/a:b.sock", "/tmp/a:b.sock"),
    ],
)
def test_unix(spec: str, path: str) -> None:
    assert parse_bind(spec) == BindSpec("unix", path=path)


@pytest.mark.parametrize(("spec", "fd"), [("fd://3", 3), ("fd://0", 0), ("fd://012", 12)])
def test_fd(spec: str, fd: int) -> None:
    assert parse_bind(spec) == BindSpec("fd", fd=fd)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("unix:", "needs a path"),
        ("unix://", "needs a path"),
        ("fd://", "fd://N"),
        ("fd://x", "fd://N"),
        ("fd://-1", "fd://N"),
        ("fd://3.0", "fd://N"),
        ("127.0.0.1:65536", "invalid port"),
        ("127.0.0.1:99999", "invalid port"),
        ("127.0.0.1:-1", "invalid port"),
        ("127.0.0.1:http", "invalid port"),
        ("127.0.0.1:", "invalid port"),
        ("127.0.0.1: 80", "invalid port"),
        ("[::1]:", "invalid port"),
        ("[::1]:abc", "invalid port"),
        ("[::1", "expected \\[ipv6\\]:port"),
        ("[::1]8000", "expected \\[ipv6\\]:port"),
        ("::1", "brackets"),
        ("::1:8000", "brackets"),
        ("2001:db8::1:443", "brackets"),
        ("http://localhost:8000", "brackets"),
    ],
)
def test_invalid(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_bind(spec)
    assert repr(spec) in str(info.value)


def test_validate_binds() -> None:
    specs = validate_binds(["127.0.0.1:1", "unix:/tmp/s", "fd://4", "[::1]:2"])
    assert [spec.kind for spec in specs] == ["tcp", "unix", "fd", "tcp"]
    with pytest.raises(ConfigError):
        validate_binds(["127.0.0.1:1", "nope:port"])


@pytest.mark.parametrize(
    ("spec", "shown"),
    [
        ("127.0.0.1:80", "127.0.0.1:80"),
        ("[::1]:80", "[::1]:80"),
        ("localhost", "localhost:8000"),
        ("unix:///run/a.sock", "unix:/run/a.sock"),
        ("fd://3", "fd://3"),
    ],
)
def test_display(spec: str, shown: str) -> None:
    parsed = parse_bind(spec)
    assert parsed.display == shown
    assert parse_bind(parsed.display) == parsed
