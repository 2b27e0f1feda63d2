"""The RequestParser interface: backends, resume/take_pending, buffering, limits."""

from __future__ import annotations

import pytest

from greenserve.errors import ConfigError, ProtocolError
from greenserve.protocol import parser as parser_module
from greenserve.protocol.events import END, Limits, Request
from greenserve.protocol.parser import BACKENDS, head_parser_class, new_parser, resolve_backend_name

from .helpers import normalise

GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
UPGRADE = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"


def test_backend_names() -> None:
    assert BACKENDS == ("h11", "httptools")
    assert resolve_backend_name("h11") == "h11"
    assert resolve_backend_name("httptools") == "httptools"
    assert resolve_backend_name("auto") == "httptools"  # installed in the test environment
    with pytest.raises(ConfigError):
        resolve_backend_name("llhttp")


def test_auto_falls_back_to_h11(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parser_module, "httptools_available", lambda: False)
    assert resolve_backend_name("auto") == "h11"
    with pytest.raises(ConfigError):
        resolve_backend_name("httptools")


@pytest.mark.parametrize("name", BACKENDS)
def test_new_parser(name: str) -> None:
    parser = new_parser(name)
    assert parser.limits == Limits()
    assert head_parser_class(name).name == name
    limits = Limits(body_size=5)
    assert new_parser(name, limits).limits is limits


def test_auto_is_httptools_where_it_is_installed() -> None:
    assert resolve_backend_name("auto") == "httptools"
    assert head_parser_class("auto").name == "httptools"


def test_limits_head_size() -> None:
    limits = Limits(request_line=10, fields=2, field_size=5)
    assert limits.head_size >= 10 + 2 + 2 * (5 + 2) + 2


@pytest.mark.parametrize("name", BACKENDS)
def test_events_are_appended_in_order(name: str) -> None:
    parser = new_parser(name)
    parser.feed(GET)
    request, end = parser.events
    assert isinstance(request, Request)
    assert end is END
    assert repr(request) == "<Request GET b'/' HTTP/1.1>"
    assert repr(END) == "END"
    parser.events.clear()
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nab")
    assert isinstance(parser.events[0], Request)
    assert parser.events[1] == b"ab"
    parser.feed(b"c")
    assert list(parser.events)[2:] == [b"c", END]


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize(
    ("field", "forwarded"),
    [
        (b"Forwarded: for=192.0.2.1", True),
        (b"X-Forwarded-For: 192.0.2.1", True),
        (b"x-forwarded-proto: https", True),
        (b"X-FORWARDED-HOST: example.com", True),
        (b"X-Forwarded-Port: 8443", True),
        (b"X-Forwarded-Prefix: /app", True),
        (b"X-Forwarded-Server: proxy", False),  # not one greenserve reads
        (b"X-Real-IP: 192.0.2.1", False),
    ],
)
def test_request_says_whether_proxy_fields_came(name: str, field: bytes, forwarded: bool) -> None:
    """The worker applies the proxy rules only to requests flagged here, so no parser may miss one."""
    parser = new_parser(name)
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\n" + field + b"\r\nUser-Agent: t\r\n\r\n")
    request = parser.events[0]
    assert isinstance(request, Request)
    assert request.forwarded is forwarded


@pytest.mark.parametrize("name", BACKENDS)
def test_errors_are_queued_not_raised(name: str) -> None:
    parser = new_parser(name)
    parser.feed(GET + b"GET / HTTP/1.1\r\n\r\n")
    assert len(parser.events) == 3
    error = parser.events[2]
    assert isinstance(error, ProtocolError)
    assert error.status == 400
    assert error.reason
    assert "400" in repr(error)


@pytest.mark.parametrize("name", BACKENDS)
def test_many_keep_alive_requests_on_one_parser(name: str) -> None:
    """The httptools backend reuses its llhttp parser between bodiless requests."""
    parser = new_parser(name)
    for i in range(50):
        parser.feed(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i)
        if i % 7 == 0:
            parser.feed(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok")
        if i % 11 == 0:
            parser.feed(b"GET /c HTTP/1.0\r\n\r\n")
    requests = [event for event in parser.events if isinstance(event, Request)]
    assert len(requests) == 50 + 8 + 5
    assert not any(isinstance(event, ProtocolError) for event in parser.events)


@pytest.mark.parametrize("name", BACKENDS)
def test_requests_after_connection_close_still_parse(name: str) -> None:
    """Whether to read on after 'Connection: close' is the worker's decision."""
    parser = new_parser(name)
    parser.feed(b"GET /1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n" + GET)
    assert normalise(parser.events)[2]["request"]["target"] == "/"


@pytest.mark.parametrize("name", BACKENDS)
def test_upgrade_pauses_until_resume(name: str) -> None:
    parser = new_parser(name)
    parser.feed(UPGRADE + GET[:10])
    assert len(parser.events) == 2
    parser.feed(GET[10:])
    parser.feed_eof()  # a paused parser does not complain about EOF
    assert len(parser.events) == 2
    parser.resume()
    assert len(parser.events) == 4
    assert parser.events[2].target == b"/"
    parser.resume()  # not paused: nothing happens
    assert len(parser.events) == 4


@pytest.mark.parametrize("name", BACKENDS)
def test_take_pending_ends_the_parser(name: str) -> None:
    parser = new_parser(name)
    parser.feed(UPGRADE + b"\x81\x00")
    parser.feed(b"more")
    assert parser.take_pending() == b"\x81\x00more"
    parser.feed(GET)
    parser.feed_eof()
    assert len(parser.events) == 2
    assert parser.take_pending() == b""


@pytest.mark.parametrize("name", BACKENDS)
def test_data_after_upgrade_is_bounded(name: str) -> None:
    limits = Limits(request_line=64, fields=4, field_size=64)
    parser = new_parser(name, limits)
    parser.feed(UPGRADE)
    parser.feed(b"x" * limits.head_size)
    assert len(parser.events) == 2
    parser.feed(b"x")
    assert isinstance(parser.events[-1], ProtocolError)
    assert parser.events[-1].status == 400


@pytest.mark.parametrize("name", BACKENDS)
def test_bare_lf_head_fails_without_eof(name: str) -> None:
    parser = new_parser(name)
    parser.feed(b"GET / HTTP/1.1\n")
    assert [event.status for event in parser.events] == [400]


@pytest.mark.parametrize("name", BACKENDS)
def test_long_head_one_byte_at_a_time_is_linear(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow client costs linear work: each byte of a partial head is checked about once."""
    checked = []
    original = parser_module.check_raw_head

    def counting(data, complete):
        checked.append(len(data))
        return original(data, complete)

    monkeypatch.setattr(parser_module, "check_raw_head", counting)
    parser = new_parser(name)
    head = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-Filler: " + b"y" * 7000 + b"\r\n\r\n"
    for i in range(len(head)):
        parser.feed(head[i : i + 1])
    assert isinstance(parser.events[0], Request)
    assert sum(checked) < 3 * len(head)


@pytest.mark.parametrize("name", BACKENDS)
def test_large_body_is_streamed(name: str) -> None:
    parser = new_parser(name)
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n")
    piece = b"z" * 65536
    sent = 0
    while sent < 1_000_000:
        take = min(len(piece), 1_000_000 - sent)
        parser.feed(piece[:take])
        sent += take
    events = list(parser.events)
    assert events[-1] is END
    assert sum(len(event) for event in events[1:-1]) == 1_000_000
