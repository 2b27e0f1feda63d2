"""Tier (a): request ids (protocol/request_id.py) and the response line the exchange adds, on bytes.

Requests are parsed by both backends; responses are read back by an h11
client. The server-level behaviour (trust, environ, scope, logs) is tested
against a real server in tests/operations/test_request_id.py.
"""

from __future__ import annotations

import re

import h11
import pytest

from greenserve.config import parse_header_name
from greenserve.errors import ProtocolError
from greenserve.protocol.events import Limits, Request
from greenserve.protocol.exchange import Exchange, ExchangeSettings
from greenserve.protocol.parser import new_parser
from greenserve.protocol.request_id import MAX_LENGTH, RequestIds, new_id
from greenserve.protocol.response import Head

from .helpers import BACKENDS

GENERATED = re.compile(r"[0-9a-f]{32}")
DATE = b"Date: Thu, 01 Jan 2026 00:00:00 GMT\r\n"


def parsed(backend: str, *fields: bytes) -> Request:
    """The request a parser makes of a GET with these raw field lines."""
    parser = new_parser(backend, Limits(field_size=16384))  # room for a 10 KB value
    parser.feed(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n")
    event = parser.events.popleft()
    assert isinstance(event, Request), event
    return event


def test_new_ids_are_32_hex_digits_and_unique():
    ids = {new_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(GENERATED.fullmatch(i) for i in ids)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "value",
    [b"abc", b"f81d4fae-7dec-11d0-a765-00a0c91e6bf6", b"Root=1-67891233-abcdef;Parent=53995c3f", b"a" * 200],
)
def test_a_trusted_valid_id_is_kept(backend, value):
    request = parsed(backend, b"X-Request-ID: " + value)
    assert RequestIds().assign(request.headers, trusted=True) == value.decode()


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_untrusted_id_is_replaced(backend):
    request = parsed(backend, b"X-Request-ID: abc")
    assert GENERATED.fullmatch(RequestIds().assign(request.headers, trusted=False))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "value",
    [
        b'a"b',
        b"a\\b",
        b"a b",
        b"a\tb",
        b"\xc3\xa9",
        b"\xff",
        b"a" * (MAX_LENGTH + 1),
        b"x" * 10240,
    ],
    ids=["quote", "backslash", "space", "tab", "utf-8", "latin-1", "201 chars", "10 KB"],
)
def test_invalid_ids_are_replaced(backend, value):
    request = parsed(backend, b"X-Request-ID: " + value)
    assert GENERATED.fullmatch(RequestIds().assign(request.headers, trusted=True))


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_empty_or_missing_id_is_replaced(backend):
    for request in (parsed(backend, b"X-Request-ID: "), parsed(backend)):
        assert GENERATED.fullmatch(RequestIds().assign(request.headers, trusted=True))


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_last_of_repeated_headers_counts_and_names_ignore_case(backend):
    request = parsed(backend, b"x-request-id: first", b"X-REQUEST-ID: last")
    assert RequestIds().assign(request.headers, trusted=True) == "last"
    request = parsed(backend, b"X-Request-ID: valid", b"X-Request-ID: in valid")
    assert GENERATED.fullmatch(RequestIds().assign(request.headers, trusted=True))  # the last one decides


@pytest.mark.parametrize("backend", BACKENDS)
def test_another_header_name(backend):
    request = parsed(backend, b"X-Request-ID: no", b"X-Amzn-Trace-Id: Root=1-2-3")
    assert RequestIds("X-Amzn-Trace-Id").assign(request.headers, trusted=True) == "Root=1-2-3"


# -- the response line, through the exchange -------------------------------------------------


def respond(exchange: Exchange, request: Request, head: Head) -> dict[str, str]:
    exchange.start(request)
    exchange.id_line = RequestIds().response_line("abc-1")
    data = exchange.send_head(head, b"hi", end=True)
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    response = client.next_event()
    assert isinstance(response, h11.Response)
    headers: dict[str, str] = {}
    for name, value in response.headers:
        assert name.decode() not in headers, f"{name!r} twice"
        headers[name.decode()] = value.decode()
    return headers


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_response_carries_the_id(backend):
    exchange = Exchange(ExchangeSettings(lambda: DATE, b"", id_header=b"X-Request-ID"))
    headers = respond(exchange, parsed(backend), Head("200 OK", [("Server", "app"), ("Date", "x")]))
    assert headers["x-request-id"] == "abc-1"  # also when the application wrote Date and Server


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["X-Request-ID", "x-request-id", "X-REQUEST-ID"])
def test_the_application_own_header_is_sent_alone(backend, name):
    exchange = Exchange(ExchangeSettings(lambda: DATE, b"", id_header=b"X-Request-ID"))
    headers = respond(exchange, parsed(backend), Head("200 OK", [("A", "1"), (name, "app-id")]))
    assert headers["x-request-id"] == "app-id"


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_error_response_carries_the_id_of_its_request_only(backend):
    exchange = Exchange(ExchangeSettings(lambda: DATE, b"", id_header=b"X-Request-ID"))
    exchange.start(parsed(backend))
    exchange.id_line = RequestIds().response_line("abc-2")
    assert b"\r\nX-Request-ID: abc-2\r\n" in exchange.send_error(500)

    # A keep-alive connection: after a request with an id, a head that cannot be parsed
    # gets a 400 without the previous request's id.
    exchange = Exchange(ExchangeSettings(lambda: DATE, b"", id_header=b"X-Request-ID"))
    exchange.start(parsed(backend))
    exchange.id_line = RequestIds().response_line("abc-3")
    exchange.send_head(Head("200 OK", []), b"", end=True)
    exchange.finish(True)
    error = ProtocolError(400, "bad request")
    assert b"abc-3" not in exchange.send_error(error.status, error.reason)


# -- the setting ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["X-Request-ID", "X-Correlation-ID", "Request-Id", "x_trace"])
def test_header_names_accepted(name):
    assert parse_header_name(f" {name} ") == name


@pytest.mark.parametrize("name", ["", "X Request", "X-Id:", "Content-Length", "host", "Connection", "é"])
def test_header_names_refused(name):
    with pytest.raises(ValueError):
        parse_header_name(name)


def test_the_access_log_atom():
    from greenserve.worker.accesslog import AccessLog

    response = type("R", (), {"head": None, "status": 200, "body_bytes": 0})()
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/", "SERVER_PROTOCOL": "HTTP/1.1"}
    assert AccessLog("%(request_id)s").format(environ, response, 0) == "-"  # off, or no id
    environ["greenserve.request_id"] = "abc-4"
    assert AccessLog("%(request_id)s").format(environ, response, 0) == "abc-4"
    environ["greenserve.request_id"] = 'set "by"\nan app'  # an application may replace it
    assert AccessLog("%(request_id)s").format(environ, response, 0) == "set \\x22by\\x22\\x0Aan app"
