"""Unit tests for greenserve.protocol.response: validating and serialising response heads."""

from __future__ import annotations

import re

import pytest

from greenserve.protocol import response
from greenserve.protocol.response import (
    CONTINUE,
    LAST_CHUNK,
    Head,
    ResponseError,
    chunk,
    date_line,
    error_response,
    parse_status,
    serialize,
    server_line,
)

DATE = b"Date: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
SERVER = b"Server: greenserve\r\n"


# -- status ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "line"),
    [
        ("200 OK", 200, b"HTTP/1.1 200 OK\r\n"),
        ("404 Not Found", 404, b"HTTP/1.1 404 Not Found\r\n"),
        ("299 Custom reason, with\ttab", 299, b"HTTP/1.1 299 Custom reason, with\ttab\r\n"),
        ("500 ", 500, b"HTTP/1.1 500 \r\n"),
        ("200 D\u00e9j\u00e0 vu", 200, b"HTTP/1.1 200 D\xe9j\xe0 vu\r\n"),
        ("599 Whatever", 599, b"HTTP/1.1 599 Whatever\r\n"),
    ],
)
def test_parse_status_valid(status: str, code: int, line: bytes) -> None:
    assert parse_status(status) == (code, line)
    assert parse_status(status) == (code, line)  # cached
    head = Head(status, [])
    assert (head.code, head.status_line) == (code, line)


@pytest.mark.parametrize(
    "status",
    [
        "200",
        "200OK",
        " 200 OK",
        "20 OK",
        "2000 OK",
        "099 Low",
        "abc OK",
        "200 OK\r\nX-Injected: 1",
        "200 OK\n",
        "200 OK\r",
        "200 OK\x00",
        "200 \u20ac",  # not latin-1
        "",
    ],
)
def test_parse_status_invalid(status: str) -> None:
    with pytest.raises(ResponseError):
        parse_status(status)
    with pytest.raises(ResponseError):
        Head(status, [])


@pytest.mark.parametrize("status", ["100 Continue", "101 Switching Protocols", "103 Early Hints"])
def test_informational_status_is_not_final(status: str) -> None:
    with pytest.raises(ResponseError):
        Head(status, [])


@pytest.mark.parametrize("status", [b"200 OK", 200, None, ("200", "OK")])
def test_status_must_be_str(status: object) -> None:
    with pytest.raises(ResponseError):
        Head(status, [])  # type: ignore[arg-type]


# -- headers -------------------------------------------------------------------


def test_plain_headers_in_order() -> None:
    head = Head("200 OK", [("Content-Type", "text/plain"), ("X-A", "1"), ("x-a", "2"), ("X-Empty", "")])
    assert head.block == b"Content-Type: text/plain\r\nX-A: 1\r\nx-a: 2\r\nX-Empty: \r\n"
    assert head.content_length is None
    assert head.close is False
    assert head.has_date is False
    assert head.has_server is False


def test_headers_are_kept_for_the_access_log() -> None:
    headers = [("X-A", "1"), ("Connection", "close")]
    assert Head("200 OK", headers).headers is headers


def test_latin1_values_are_encoded_as_latin1() -> None:
    assert Head("200 OK", [("X-Name", "caf\u00e9")]).block == b"X-Name: caf\xe9\r\n"


@pytest.mark.parametrize("value", ["\u20ac", "\u00e9\u4e2d", "\U0001f600"])
def test_non_latin1_values_are_refused(value: str) -> None:
    with pytest.raises(ResponseError):
        Head("200 OK", [("X-Name", value)])


@pytest.mark.parametrize(
    "value",
    [
        "a\r\nX-Injected: 1",
        "a\nX-Injected: 1",
        "a\rX-Injected: 1",
        "a\r\n",
        "\r\n\r\n<html>",
        "a\x00b",
    ],
)
@pytest.mark.parametrize("name", ["X-Value", "Content-Type", "Set-Cookie", "Location", "Date", "Server"])
def test_header_injection_is_refused(name: str, value: str) -> None:
    with pytest.raises(ResponseError):
        Head("200 OK", [(name, value)])
    with pytest.raises(ResponseError):
        Head("200 OK", [("X-Before", "ok"), (name, value), ("X-After", "ok")])


@pytest.mark.parametrize(
    "name",
    ["", "X Name", "X:Name", "X-Name:", "X\r\nInjected", "X\x00", "Caf\u00e9", "(x)", "a/b", "[x]", "X\t"],
)
def test_invalid_header_names(name: str) -> None:
    with pytest.raises(ResponseError):
        Head("200 OK", [(name, "v")])


@pytest.mark.parametrize("name", ["X-Name", "x_name", "!#$%&'*+-.^_`|~", "A1"])
def test_token_header_names(name: str) -> None:
    assert Head("200 OK", [(name, "v")]).block == name.encode() + b": v\r\n"


@pytest.mark.parametrize(
    "headers",
    [
        [(b"X-Name", "v")],
        [("X-Name", b"v")],
        [("X-Name", 1)],
        [("X-Name", None)],
        [("Content-Type", b"text/plain")],
        [("Content-Length", b"5")],
        [("Content-Length", 5)],
        [("X-Name",)],
        [("X-Name", "v", "extra")],
        ["X-Name: v"],
        [None],
        None,
        "X-Name: v",
    ],
)
def test_headers_must_be_str_pairs(headers: object) -> None:
    with pytest.raises(ResponseError):
        Head("200 OK", headers)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["Connection", "Transfer-Encoding", "Keep-Alive"])
def test_bytes_values_are_refused_on_server_managed_headers_too(name: str) -> None:
    """A bytes value is a type error whatever the name (PEP 3333: str only)."""
    with pytest.raises(ResponseError):
        Head("200 OK", [(name, b"close")])  # type: ignore[list-item]


# -- framing headers ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["Connection", "connection", "Keep-Alive", "Transfer-Encoding", "TRANSFER-ENCODING", "Proxy-Connection"],
)
def test_hop_by_hop_headers_are_dropped(name: str) -> None:
    head = Head("200 OK", [("X-A", "1"), (name, "keep-alive"), ("X-B", "2")])
    assert head.block == b"X-A: 1\r\nX-B: 2\r\n"


@pytest.mark.parametrize(
    ("value", "close"),
    [
        ("close", True),
        ("Close", True),
        ("keep-alive, close", True),
        ("keep-alive", False),
        ("upgrade", False),
    ],
)
def test_connection_close_sets_close(value: str, close: bool) -> None:
    head = Head("200 OK", [("Connection", value)])
    assert head.close is close
    assert head.block == b""


@pytest.mark.parametrize(
    ("value", "length"), [("0", 0), ("5", 5), ("007", 7), (" 12 ", 12), ("12345678901", 12345678901)]
)
def test_content_length_is_parsed_and_removed(value: str, length: int) -> None:
    head = Head("200 OK", [("Content-Length", value), ("X-A", "1")])
    assert head.content_length == length
    assert head.block == b"X-A: 1\r\n"  # the server writes it, once


@pytest.mark.parametrize("value", ["", "-1", "+5", "5 5", "1.5", "0x10", "five", "\u0665", "\uff15", "5\x00"])
def test_invalid_content_length(value: str) -> None:
    with pytest.raises(ResponseError):
        Head("200 OK", [("Content-Length", value)])


def test_repeated_equal_content_length_is_one() -> None:
    head = Head("200 OK", [("Content-Length", "5"), ("content-length", "5")])
    assert head.content_length == 5
    assert head.block == b""


def test_conflicting_content_length() -> None:
    with pytest.raises(ResponseError):
        Head("200 OK", [("Content-Length", "5"), ("Content-Length", "6")])


def test_content_length_is_kept_for_the_exchange_to_decide() -> None:
    """Head only validates; which statuses carry a body is the exchange's rule (test_exchange.py)."""
    assert Head("304 Not Modified", [("Content-Length", "10")]).content_length == 10
    head = Head("204 No Content", [("Content-Length", "10")])
    assert head.content_length == 10
    assert head.block == b""


def test_date_and_server_from_the_application() -> None:
    head = Head("200 OK", [("date", "Mon, 01 Jan 2024 00:00:00 GMT"), ("SERVER", "app/1.0")])
    assert head.has_date and head.has_server
    assert head.block == b"date: Mon, 01 Jan 2024 00:00:00 GMT\r\nSERVER: app/1.0\r\n"


# -- bodies ----------------------------------------------------------------------------


def test_chunk_and_last_chunk() -> None:
    assert chunk(b"hello") == b"5\r\nhello\r\n"
    assert chunk(b"x" * 255) == b"ff\r\n" + b"x" * 255 + b"\r\n"
    assert LAST_CHUNK == b"0\r\n\r\n"


# -- serialize -------------------------------------------------------------------------


def test_serialize_content_length_keep_alive() -> None:
    head = Head("200 OK", [("Content-Type", "text/plain")])
    data = serialize(head, DATE, SERVER, 5, False, True, False)
    assert data == (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n" + DATE + SERVER + b"\r\n"
    )


def test_serialize_chunked_close() -> None:
    data = serialize(Head("200 OK", []), DATE, SERVER, None, True, False, False)
    assert (
        data
        == b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n" + DATE + SERVER + b"\r\n"
    )


def test_serialize_content_length_wins_over_chunked() -> None:
    data = serialize(Head("200 OK", []), DATE, SERVER, 0, True, True, False)
    assert b"Content-Length: 0\r\n" in data
    assert b"Transfer-Encoding" not in data


def test_serialize_http10_keep_alive() -> None:
    data = serialize(Head("200 OK", []), DATE, SERVER, 2, False, True, True)
    assert b"Connection: keep-alive\r\n" in data
    data = serialize(Head("200 OK", []), DATE, SERVER, 2, False, False, True)
    assert b"Connection: close\r\n" in data and b"keep-alive" not in data


def test_serialize_no_framing() -> None:
    data = serialize(Head("204 No Content", []), DATE, SERVER, None, False, True, False)
    assert data == b"HTTP/1.1 204 No Content\r\n" + DATE + SERVER + b"\r\n"


def test_serialize_application_date_and_server_are_not_doubled() -> None:
    head = Head("200 OK", [("Date", "x"), ("Server", "app")])
    data = serialize(head, DATE, SERVER, 0, False, True, False)
    assert data.count(b"Date:") == 1 and data.count(b"Server:") == 1
    assert b"Date: x\r\n" in data and b"Server: app\r\n" in data


def test_serialize_without_server_line() -> None:
    data = serialize(Head("200 OK", []), DATE, server_line(""), 0, False, True, False)
    assert b"Server" not in data
    assert data.endswith(b"\r\n\r\n")


def test_serialize_ends_with_one_empty_line() -> None:
    data = serialize(Head("200 OK", [("X", "y")]), DATE, SERVER, 1, False, True, False)
    assert data.endswith(b"\r\n\r\n") and not data.endswith(b"\r\n\r\n\r\n")
    assert data.count(b"\r\n\r\n") == 1


# -- server_line, date_line -------------------------------------------------------------


def test_server_line() -> None:
    assert server_line("greenserve") == b"Server: greenserve\r\n"
    assert server_line("caf\u00e9/1") == b"Server: caf\xe9/1\r\n"
    assert server_line("") == b""


@pytest.mark.parametrize("name", ["a\r\nX: y", "a\nb", "a\rb", "a\x00"])
def test_server_line_injection(name: str) -> None:
    with pytest.raises(ValueError):
        server_line(name)


def test_server_line_not_latin1() -> None:
    with pytest.raises(ValueError):
        server_line("\u20ac")


def test_date_line() -> None:
    assert date_line(0) == b"Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
    assert re.fullmatch(rb"Date: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT\r\n", date_line(1.7e9))


# -- error_response, CONTINUE ------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "phrase"),
    [
        (400, b"Bad Request"),
        (405, b"Method Not Allowed"),
        (408, b"Request Timeout"),
        (413, b"Content Too Large"),  # RFC 9110 names, whatever the Python version
        (414, b"URI Too Long"),
        (431, b"Request Header Fields Too Large"),
        (500, b"Internal Server Error"),
        (501, b"Not Implemented"),
        (503, b"Service Unavailable"),
        (505, b"HTTP Version Not Supported"),
    ],
)
def test_error_response(status: int, phrase: bytes) -> None:
    data = error_response(status, DATE, SERVER)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 %d %s" % (status, phrase)
    assert b"Connection: close" in lines
    assert b"Content-Type: text/plain; charset=utf-8" in lines
    assert b"Content-Length: %d" % len(body) in lines
    assert DATE.rstrip(b"\r\n") in lines and SERVER.rstrip(b"\r\n") in lines
    assert body == b"%d %s\n" % (status, phrase)


def test_error_response_detail() -> None:
    data = error_response(400, DATE, b"", "bad chunk size \u00e9")
    head, _, body = data.partition(b"\r\n\r\n")
    assert body == b"400 Bad Request\nbad chunk size ?\n"
    assert b"Content-Length: %d\r\n" % len(body) in data
    assert b"Server" not in head


def test_continue() -> None:
    assert CONTINUE == b"HTTP/1.1 100 Continue\r\n\r\n"


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (200, "200 OK"),
        (404, "404 Not Found"),
        (299, "299 Success"),
        (499, "499 Client Error"),
        (599, "599 Server Error"),
    ],
)
def test_status_text(code: int, text: str) -> None:
    assert response.status_text(code) == text
    assert response.status_text(code) == text
    assert parse_status(text)[0] == code


@pytest.mark.parametrize(
    ("code", "phrase"),
    [
        (200, "OK"),
        (413, "Content Too Large"),
        (414, "URI Too Long"),
        (416, "Range Not Satisfiable"),
        (422, "Unprocessable Content"),
        (431, "Request Header Fields Too Large"),
        (299, "Success"),
        (399, "Redirection"),
    ],
)
def test_reason_phrase(code: int, phrase: str) -> None:
    assert response.reason_phrase(code) == phrase


def test_asgi_headers_may_be_any_iterable() -> None:
    """ASGI says headers are an iterable: a generator is read once, not lost to the cache lookup."""
    head = Head.from_asgi(200, ((name, value) for name, value in [(b"x-one", b"1"), (b"x-two", b"2")]))
    assert head.block == b"x-one: 1\r\nx-two: 2\r\n"
    assert Head.from_asgi(200, [[b"x-list", b"3"]]).block == b"x-list: 3\r\n"


def test_content_length_line_for_any_length(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(response, "_LENGTH_LINES", {})
    head = Head("200 OK", [])
    for length in [0, 13, 10**15, *range(response._CACHE_LIMIT + 20), 13]:
        data = serialize(head, DATE, SERVER, length, False, True, False)
        assert data == b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" % length + DATE + SERVER + b"\r\n"
    assert len(response._LENGTH_LINES) == response._CACHE_LIMIT  # application-chosen, still bounded
