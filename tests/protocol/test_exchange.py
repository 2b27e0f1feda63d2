"""Tier (a): the response half of HTTP/1.1 (protocol/exchange.py), on bytes, with both parsers.

A tiny sans-IO server loop feeds request bytes to a parser, runs a scripted
"application" against the exchange, and collects the bytes it returns; h11,
the reference implementation, then reads those bytes as a client would. No
socket anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

import h11
import pytest

from greenserve.errors import ProtocolError
from greenserve.protocol.events import END, Request
from greenserve.protocol.exchange import (
    CLOSE,
    CLOSE_LINGER,
    DONE,
    DRAIN,
    IDLE,
    KEEP_ALIVE,
    MUST_CLOSE,
    RECEIVING,
    RESPONDING,
    SWITCHED,
    Exchange,
    ExchangeError,
    ExchangeSettings,
)
from greenserve.protocol.parser import new_parser
from greenserve.protocol.response import CONTINUE, Head

from .helpers import BACKENDS

DATE = b"Date: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
SERVER = b"Server: greenserve-test\r\n"

Respond = Callable[[Exchange, Request, bytes], bytes]


def settings(**options) -> ExchangeSettings:
    return ExchangeSettings(lambda: DATE, SERVER, **options)


def serve(backend: str, data: bytes, respond: Respond, **options) -> tuple[bytes, list[int]]:
    """Serve every request in ``data``: (bytes sent, what finish() said after each one)."""
    parser = new_parser(backend)
    exchange = Exchange(settings(**options))
    parser.feed(data)
    out = b""
    steps: list[int] = []
    events = parser.events
    while events:
        event = events.popleft()
        if isinstance(event, ProtocolError):
            out += exchange.send_error(event.status, event.reason)
            steps.append(exchange.finish(True))
            break
        assert isinstance(event, Request)
        exchange.start(event)
        body = b""
        while events[0] is not END:
            body += events.popleft()
        events.popleft()
        out += respond(exchange, event, body)
        step = exchange.finish(True)
        steps.append(step)
        if step != KEEP_ALIVE:
            break
    return out, steps


def h11_read(requests: list[tuple[str, bytes]], data: bytes) -> list[dict]:
    """What an h11 client makes of ``data``, the answers to ``requests`` (method, target) in order."""
    client = h11.Connection(h11.CLIENT)
    client.receive_data(data)
    answers = []
    for method, target in requests:
        if client.states[h11.CLIENT] is h11.MUST_CLOSE:
            break
        client.send(h11.Request(method=method, target=target, headers=[("Host", "x")]))
        client.send(h11.EndOfMessage())
        answer: dict = {"body": b""}
        while True:
            event = client.next_event()
            assert event is not h11.NEED_DATA, f"incomplete response in {data!r}"
            if isinstance(event, h11.Response):
                answer["status"] = event.status_code
                answer["headers"] = {name.decode().lower(): value.decode() for name, value in event.headers}
            elif isinstance(event, h11.Data):
                answer["body"] += event.data
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
        answers.append(answer)
        if client.our_state is h11.DONE and client.their_state is h11.DONE:
            client.start_next_cycle()
        else:
            client.receive_data(b"")  # the server closes: a close-delimited body ends here
            while not isinstance(client.next_event(), (h11.EndOfMessage, h11.ConnectionClosed)):
                pass
            break
    return answers


def request(method: str = "GET", target: str = "/", version: str = "1.1", **headers: str) -> bytes:
    lines = [f"{method} {target} HTTP/{version}", "Host: x"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def ok(
    body: bytes = b"hello", headers: list[tuple[str, str]] | None = None, status: str = "200 OK"
) -> Respond:
    """An application returning ``body`` whole (as a WSGI list)."""

    def respond(exchange: Exchange, request: Request, received: bytes) -> bytes:
        return exchange.send_head(Head(status, headers or []), body, end=True)

    return respond


def streamed(*pieces: bytes, headers: list[tuple[str, str]] | None = None, status: str = "200 OK") -> Respond:
    """An application writing its body in pieces, length unknown up front."""

    def respond(exchange: Exchange, request: Request, received: bytes) -> bytes:
        out = exchange.send_head(Head(status, headers or []))
        for piece in pieces:
            out += exchange.send_data(piece)
        return out + exchange.send_end()

    return respond


# -- keep-alive -----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_http11_keeps_the_connection_and_answers_pipelined_requests_in_order(backend):
    data = request(target="/a") + request(target="/b") + request(target="/c")

    def echo_target(exchange, req, body):
        return exchange.send_head(Head("200 OK", []), req.target, end=True)

    out, steps = serve(backend, data, echo_target)
    assert steps == [KEEP_ALIVE] * 3
    answers = h11_read([("GET", "/a"), ("GET", "/b"), ("GET", "/c")], out)
    assert [a["body"] for a in answers] == [b"/a", b"/b", b"/c"]
    assert all("connection" not in a["headers"] for a in answers)
    assert answers[0]["headers"]["content-length"] == "2"


@pytest.mark.parametrize("backend", BACKENDS)
def test_client_connection_close_is_answered_with_close(backend):
    out, steps = serve(backend, request(Connection="close") + request(target="/never"), ok())
    assert steps == [CLOSE]
    (answer,) = h11_read([("GET", "/")], out)
    assert answer["headers"]["connection"] == "close"


@pytest.mark.parametrize("backend", BACKENDS)
def test_application_connection_close_wins_and_is_sent_once(backend):
    out, steps = serve(backend, request(), ok(headers=[("Connection", "close"), ("X-A", "1")]))
    assert steps == [CLOSE]
    assert out.count(b"Connection: close\r\n") == 1
    assert b"X-A: 1\r\n" in out


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_draining_server_answers_with_close(backend):
    parser = new_parser(backend)
    exchange = Exchange(settings())
    parser.feed(request())
    exchange.start(parser.events.popleft())
    exchange.settings.draining = True  # the worker started to stop while the app ran
    out = exchange.send_head(Head("200 OK", []), b"x", end=True)
    assert b"Connection: close\r\n" in out
    assert exchange.finish(True) == CLOSE
    assert exchange.close_reason == "the server is stopping"


@pytest.mark.parametrize("backend", BACKENDS)
def test_keep_alive_off_closes_every_connection(backend):
    out, steps = serve(backend, request() + request(), ok(), keep_alive=False)
    assert steps == [CLOSE]
    assert b"Connection: close\r\n" in out


# -- HTTP/1.0 ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_http10_closes_by_default(backend):
    out, steps = serve(backend, request(version="1.0"), ok())
    assert steps == [CLOSE]
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close\r\n" in out
    assert b"Content-Length: 5\r\n" in out


@pytest.mark.parametrize("backend", BACKENDS)
def test_http10_keep_alive_on_request_is_confirmed(backend):
    out, steps = serve(backend, request(version="1.0", Connection="keep-alive") * 2, ok())
    assert steps == [KEEP_ALIVE, KEEP_ALIVE]
    assert out.count(b"Connection: keep-alive\r\n") == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_http10_body_of_unknown_length_ends_with_the_connection(backend):
    out, steps = serve(backend, request(version="1.0", Connection="keep-alive"), streamed(b"ab", b"cd"))
    assert steps == [CLOSE]
    assert b"Transfer-Encoding" not in out
    assert out.endswith(b"\r\n\r\nabcd")
    assert b"Connection: close\r\n" in out


# -- framing --------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_unknown_length_is_chunked_on_http11_and_keeps_the_connection(backend):
    out, steps = serve(backend, request() * 2, streamed(b"one", b"", b"two"))
    assert steps == [KEEP_ALIVE, KEEP_ALIVE]
    assert b"Transfer-Encoding: chunked\r\n" in out
    answers = h11_read([("GET", "/"), ("GET", "/")], out)
    assert [a["body"] for a in answers] == [b"onetwo", b"onetwo"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_content_length_is_enforced_bytes_beyond_it_are_dropped(backend):
    respond = streamed(b"12345", b"678", headers=[("Content-Length", "6")])
    parser = new_parser(backend)
    parser.feed(request())
    exchange = Exchange(settings())
    exchange.start(parser.events.popleft())
    out = respond(exchange, exchange.request, b"")
    assert exchange.excess == 2
    assert exchange.body_bytes == 6
    assert exchange.finish(True) == KEEP_ALIVE
    (answer,) = h11_read([("GET", "/")], out)
    assert answer["body"] == b"123456"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_body_shorter_than_its_content_length_closes_the_connection(backend):
    out, steps = serve(backend, request() + request(), streamed(b"abc", headers=[("Content-Length", "10")]))
    assert steps == [CLOSE]
    assert out.endswith(b"abc")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_whole_body_given_with_the_head_gets_its_exact_length(backend):
    out, _ = serve(backend, request(), ok(b"x" * 1000))
    assert b"Content-Length: 1000\r\n" in out
    assert b"Transfer-Encoding" not in out


# -- responses without a body ---------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_head_gets_the_length_of_the_body_but_not_the_body(backend):
    out, steps = serve(backend, request("HEAD") + request("HEAD"), ok(b"would be sent"))
    assert steps == [KEEP_ALIVE, KEEP_ALIVE]
    answers = h11_read([("HEAD", "/"), ("HEAD", "/")], out)
    assert [a["headers"]["content-length"] for a in answers] == ["13", "13"]
    assert [a["body"] for a in answers] == [b"", b""]
    assert out.count(b"would be sent") == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_head_of_a_streamed_body_is_neither_chunked_nor_closed(backend):
    out, steps = serve(backend, request("HEAD"), streamed(b"abc"))
    assert steps == [KEEP_ALIVE]
    assert b"Transfer-Encoding" not in out
    assert out.endswith(b"\r\n\r\n")


@pytest.mark.parametrize("backend", BACKENDS)
def test_204_has_neither_body_nor_content_length(backend):
    respond = ok(b"ignored", [("Content-Length", "7")], status="204 No Content")
    out, steps = serve(backend, request() * 2, respond)
    assert steps == [KEEP_ALIVE, KEEP_ALIVE]
    assert b"Content-Length" not in out
    assert b"ignored" not in out
    answers = h11_read([("GET", "/"), ("GET", "/")], out)
    assert [a["status"] for a in answers] == [204, 204]


@pytest.mark.parametrize("backend", BACKENDS)
def test_304_keeps_its_content_length_but_sends_no_body(backend):
    respond = streamed(b"ignored", headers=[("Content-Length", "7")], status="304 Not Modified")
    out, steps = serve(backend, request() * 2, respond)
    assert steps == [KEEP_ALIVE, KEEP_ALIVE]
    assert out.count(b"Content-Length: 7\r\n") == 2
    assert b"ignored" not in out
    assert [a["status"] for a in h11_read([("GET", "/"), ("GET", "/")], out)] == [304, 304]


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
def test_no_body_statuses_give_no_length_for_an_empty_list_either(status):
    exchange = Exchange(settings())
    exchange.start(Request("GET", b"/", "1.1", [], True, None, False, False, None))
    out = exchange.send_head(Head(status, []), b"", end=True)
    assert b"Content-Length" not in out
    assert out.endswith(b"\r\n\r\n")


# -- Expect: 100-continue ------------------------------------------------------------------


def _continue_request(backend: str) -> tuple[Exchange, Request]:
    parser = new_parser(backend)
    parser.feed(request("POST", Content_Length="4", Expect="100-continue"))
    exchange = Exchange(settings())
    req = parser.events.popleft()
    exchange.start(req)
    return exchange, req


@pytest.mark.parametrize("backend", BACKENDS)
def test_100_continue_goes_out_once_when_the_body_is_wanted(backend):
    exchange, _ = _continue_request(backend)
    assert exchange.continue_pending
    assert exchange.send_continue() == CONTINUE
    assert exchange.send_continue() == b""
    assert not exchange.continue_pending
    exchange.send_head(Head("200 OK", []), b"ok", end=True)
    assert exchange.finish(True) == KEEP_ALIVE


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_response_before_100_continue_refuses_the_body_and_closes(backend):
    exchange, _ = _continue_request(backend)
    out = exchange.send_head(Head("413 Content Too Large", []), b"too big", end=True)
    assert b"Connection: close\r\n" in out
    assert exchange.send_continue() == b""  # too late: the final response started
    # The client may never send the body it was not asked for: close, without lingering for it.
    assert exchange.finish(False) == CLOSE
    assert exchange.state == MUST_CLOSE


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_100_continue_for_http10(backend):
    parser = new_parser(backend)
    parser.feed(request("POST", version="1.0", Content_Length="1", Expect="100-continue"))
    exchange = Exchange(settings())
    exchange.start(parser.events.popleft())
    assert not exchange.continue_pending
    assert exchange.send_continue() == b""


# -- unread request bodies -------------------------------------------------------------------


def _answered_post(keep_alive: bool = True) -> Exchange:
    exchange = Exchange(settings())
    exchange.start(Request("POST", b"/", "1.1", [], keep_alive, 100, False, False, None))
    exchange.send_head(Head("200 OK", []), b"done", end=True)
    return exchange


def test_an_unread_body_is_drained_to_keep_the_connection():
    exchange = _answered_post()
    assert exchange.finish(False) == DRAIN
    assert exchange.drained(True) == KEEP_ALIVE
    assert exchange.state == IDLE


def test_an_unread_body_too_large_to_drain_closes_lingering():
    exchange = _answered_post()
    assert exchange.finish(False) == DRAIN
    assert exchange.drained(False) == CLOSE_LINGER
    assert exchange.state == MUST_CLOSE


def test_an_unread_body_on_a_closing_connection_is_not_drained():
    assert _answered_post(keep_alive=False).finish(False) == CLOSE_LINGER


def test_an_invalid_body_closes_lingering():
    assert _answered_post().finish(True, body_failed=True) == CLOSE_LINGER


# -- errors the server answers itself --------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_protocol_errors_are_answered_then_the_connection_closes(backend):
    out, steps = serve(backend, request() + b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", ok())
    assert steps == [KEEP_ALIVE, CLOSE]
    answers = h11_read([("GET", "/"), ("GET", "/")], out)
    assert [a["status"] for a in answers] == [200, 400]
    assert answers[1]["headers"]["connection"] == "close"


def test_an_error_before_the_head_is_a_whole_response():
    exchange = Exchange(settings())
    exchange.start(Request("GET", b"/", "1.1", [], True, None, False, False, None))
    out = exchange.send_error(500)
    assert out.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert exchange.status == 500
    assert exchange.body_bytes == len(b"500 Internal Server Error\n")
    assert exchange.finish(True) == CLOSE


def test_an_error_after_the_head_sends_nothing_and_closes():
    exchange = Exchange(settings())
    exchange.start(Request("GET", b"/", "1.1", [], True, None, False, False, None))
    exchange.send_head(Head("200 OK", []), b"part")
    assert exchange.send_error(500) == b""
    assert exchange.status == 200  # what the client saw
    assert exchange.finish(True) == CLOSE


def test_abort_closes_after_a_partial_response():
    exchange = Exchange(settings())
    exchange.start(Request("GET", b"/", "1.1", [], True, None, False, False, None))
    exchange.send_head(Head("200 OK", []), b"part")
    exchange.abort("the application failed")
    assert exchange.state == DONE
    assert exchange.finish(True) == CLOSE
    assert exchange.close_reason == "the application failed"


# -- states ----------------------------------------------------------------------------------


def test_the_states_of_one_cycle():
    exchange = Exchange(settings())
    assert exchange.state == IDLE
    exchange.start(Request("GET", b"/", "1.1", [], True, None, False, False, None))
    assert exchange.state == RECEIVING
    exchange.send_head(Head("200 OK", []))
    assert exchange.state == RESPONDING
    exchange.send_end()
    assert exchange.state == DONE
    assert exchange.finish(True) == KEEP_ALIVE
    assert exchange.state == IDLE
    assert repr(exchange).startswith("<Exchange idle")


def test_out_of_order_calls_are_refused():
    exchange = Exchange(settings())
    with pytest.raises(ExchangeError):
        exchange.send_head(Head("200 OK", []))
    exchange.start(Request("GET", b"/", "1.1", [], True, None, False, False, None))
    with pytest.raises(ExchangeError):
        exchange.send_data(b"x")
    with pytest.raises(ExchangeError):
        exchange.send_end()
    with pytest.raises(ExchangeError):
        exchange.start(Request("GET", b"/", "1.1", [], True, None, False, False, None))
    with pytest.raises(ExchangeError):
        exchange.finish(True)
    exchange.send_head(Head("200 OK", []))
    with pytest.raises(ExchangeError):
        exchange.send_head(Head("200 OK", []))
    with pytest.raises(ExchangeError):
        exchange.switch()


def test_switch_hands_the_connection_over():
    exchange = Exchange(settings())
    exchange.start(Request("GET", b"/ws", "1.1", [], True, None, False, False, b"websocket"))
    exchange.switch()
    assert exchange.state == SWITCHED
    assert exchange.status == 101
    assert exchange.finish(True) == CLOSE
    with pytest.raises(ExchangeError):
        exchange.send_error(500)


def test_sendfile_bytes_are_counted_against_the_length():
    exchange = Exchange(settings())
    exchange.start(Request("GET", b"/f", "1.1", [], True, None, False, False, None))
    head = Head("200 OK", [("Content-Length", "10")])
    exchange.send_head(head)
    exchange.sent_directly(10)
    assert exchange.send_end() == b""
    assert exchange.body_bytes == 10
    assert exchange.finish(True) == KEEP_ALIVE


def test_asgi_heads_accept_http_status_members():
    """HTTPStatus is an int: an ASGI application may use it as its status."""
    head = Head.from_asgi(HTTPStatus.CREATED, [(b"content-type", b"text/plain")])
    assert head.code == 201
    assert head.status_line == b"HTTP/1.1 201 Created\r\n"
