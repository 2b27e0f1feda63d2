"""Unit tests for greenserve.protocol.rules: the backend-independent request rules."""

from __future__ import annotations

import pytest

from greenserve.errors import ProtocolError
from greenserve.protocol import rules
from greenserve.protocol.events import Limits, Request
from greenserve.protocol.rules import (
    METHODS,
    check_raw_head,
    check_target,
    check_transfer_encoding,
    check_version,
    finish_head,
    parse_content_length,
)

HOST = [(b"Host", b"example.com")]


def status_of(func, *args) -> int:
    with pytest.raises(ProtocolError) as info:
        func(*args)
    return info.value.status


# -- check_raw_head ------------------------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\tb\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n",
    ],
)
def test_check_raw_head_accepts_clean_heads(head: bytes) -> None:
    check_raw_head(head, True)
    check_raw_head(head, False)


@pytest.mark.parametrize(
    ("head", "complete"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\x00\r\n\r\n", True),
        (b"GET /\x00", False),
        (b"GET / HTTP/1.1\nHost: a\n\n", True),
        (b"GET / HTTP/1.1\n", False),
        (b"\nGET / HTTP/1.1\r\n", False),
        (b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: a\rX", False),
        (b"GET / HTTP/1.1\r\nHost: a\r\r", False),
        (b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nX: a\r\n ", False),
    ],
)
def test_check_raw_head_rejects(head: bytes, complete: bool) -> None:
    assert status_of(check_raw_head, head, complete) == 400


def test_check_raw_head_trailing_cr_only_while_incomplete() -> None:
    partial = b"GET / HTTP/1.1\r\nHost: a\r"
    check_raw_head(partial, False)  # its LF may still come
    check_raw_head(bytearray(partial), False)
    assert status_of(check_raw_head, partial, True) == 400


# -- parse_content_length --------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "length"),
    [(b"0", 0), (b"5", 5), (b"007", 7), (b"123456789012345678", 123456789012345678)],
)
def test_parse_content_length_valid(value: bytes, length: int) -> None:
    assert parse_content_length(value) == length


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"+5",
        b"-5",
        b" 5",
        b"5 5",
        b"5, 5",
        b"1_0",
        b"0x5",
        b"5.0",
        b"five",
        "\u0665".encode(),  # ARABIC-INDIC DIGIT FIVE
        "\uff15".encode(),  # FULLWIDTH DIGIT FIVE
        b"\xb2",  # superscript two in latin-1
        b"1234567890123456789",  # 19 digits: beyond what the parsers represent
        b"9" * 40,
    ],
)
def test_parse_content_length_invalid(value: bytes) -> None:
    assert status_of(parse_content_length, value) == 400


# -- check_target ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", b"/"),
        ("GET", b"//double"),
        ("GET", b"/a?b=c"),
        ("OPTIONS", b"*"),
        ("OPTIONS", b"/"),
        ("GET", b"http://example.com"),
        ("GET", b"https://example.com/x"),
        ("GET", b"HTTP://EXAMPLE.COM/"),
        ("POST", b"HtTpS://example.com:8443/x?y"),
    ],
)
def test_check_target_valid(method: str, target: bytes) -> None:
    check_target(method, target)


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("GET", b"*"),
        ("POST", b"*"),
        ("OPTIONS", b"**"),
        ("GET", b"example.com:443"),
        ("GET", b"index.html"),
        ("GET", b"ftp://example.com/"),
        ("GET", b"http:/example.com"),
        ("GET", b"?x=1"),
        ("GET", b""),
    ],
)
def test_check_target_invalid(method: str, target: bytes) -> None:
    assert status_of(check_target, method, target) == 400


# -- finish_head -------------------------------------------------------------------


def finish(
    headers: list[tuple[bytes, bytes]],
    *,
    method: str = "GET",
    target: bytes = b"/",
    version: str = "1.1",
    limits: Limits | None = None,
) -> Request:
    return finish_head(method, target, version, headers, limits or Limits())


def finish_status(headers: list[tuple[bytes, bytes]], **kwargs) -> int:
    with pytest.raises(ProtocolError) as info:
        finish(headers, **kwargs)
    return info.value.status


def test_finish_head_plain_get() -> None:
    request = finish(HOST)
    assert (request.method, request.target, request.version) == ("GET", b"/", "1.1")
    assert request.headers is not None and request.headers == HOST
    assert request.keep_alive is True
    assert request.content_length is None
    assert request.chunked is False
    assert request.expect_continue is False
    assert request.upgrade is None
    assert request.has_body is False


def test_finish_head_content_length() -> None:
    request = finish([*HOST, (b"content-LENGTH", b"12")], method="POST")
    assert request.content_length == 12
    assert request.has_body is True
    assert finish([*HOST, (b"Content-Length", b"0")]).has_body is False


def test_finish_head_chunked() -> None:
    request = finish([*HOST, (b"Transfer-Encoding", b"Chunked")], method="POST")
    assert request.chunked is True
    assert request.content_length is None
    assert request.has_body is True


@pytest.mark.parametrize(
    ("version", "status"),
    [("2.0", 505), ("3.0", 505), ("9.9", 505), ("0.1", 505), ("0.9", 400)],
)
def test_finish_head_versions(version: str, status: int) -> None:
    assert finish_status(HOST, version=version) == status
    assert status_of(check_version, version) == status


@pytest.mark.parametrize("version", ["1.2", "1.5", "1.9"])
def test_finish_head_later_http1_minor_is_processed_as_1_1(version: str) -> None:
    """RFC 9110 2.5: a higher minor version is processed as the highest one implemented."""
    assert check_version(version) == "1.1"
    request = finish(HOST, version=version)
    assert request.version == "1.1"
    assert request.keep_alive is True
    assert finish_status([], version=version) == 400  # and its Host rule applies


def test_finish_head_version_comes_first() -> None:
    """A version the server does not speak is answered before anything in the head is judged."""
    headers = [*HOST, *HOST, (b"Transfer-Encoding", b"gzip")]
    assert finish_status(headers, method="get", version="2.0") == 505


def test_finish_head_http10_without_host() -> None:
    request = finish([], version="1.0")
    assert request.keep_alive is False


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([], 400),
        ([(b"Host", b"a"), (b"host", b"a")], 400),
        ([*HOST, (b"Content-Length", b"5"), (b"Content-Length", b"5")], 400),
        ([*HOST, (b"Content-Length", b"5"), (b"Content-Length", b"6")], 400),
        ([*HOST, (b"Content-Length", b"5, 5")], 400),
        ([*HOST, (b"Content-Length", b"5"), (b"Transfer-Encoding", b"chunked")], 400),
        ([*HOST, (b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"5")], 400),
        ([*HOST, (b"Transfer-Encoding", b"gzip")], 400),
        ([*HOST, (b"Transfer-Encoding", b"identity")], 400),
        ([*HOST, (b"Transfer-Encoding", b"gzip, chunked")], 501),
        ([*HOST, (b"Transfer-Encoding", b"gzip"), (b"Transfer-Encoding", b"chunked")], 501),
        ([*HOST, (b"Transfer-Encoding", b"chunked, gzip")], 400),
        ([*HOST, (b"Transfer-Encoding", b"chunked"), (b"Transfer-Encoding", b"chunked")], 400),
        ([*HOST, (b"Transfer-Encoding", b"")], 400),
        ([(b"Transfer-Encoding", b"gzip, chunked")], 400),  # no Host: malformed first
        ([*HOST, (b"Content-Length", b"5"), (b"Transfer-Encoding", b"gzip, chunked")], 400),
    ],
)
def test_finish_head_framing_errors(headers: list[tuple[bytes, bytes]], status: int) -> None:
    assert finish_status(headers, method="POST") == status


def test_finish_head_http10_transfer_encoding() -> None:
    assert finish_status([(b"Transfer-Encoding", b"chunked")], version="1.0", method="POST") == 400


def test_finish_head_http10_unknown_transfer_coding() -> None:
    """HTTP/1.0 with Transfer-Encoding is faulty framing (400), whatever the coding."""
    assert finish_status([(b"Transfer-Encoding", b"gzip, chunked")], version="1.0", method="POST") == 400


# -- check_transfer_encoding -------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        [b"chunked"],
        [b"Chunked"],
        [b"CHUNKED"],
    ],
)
def test_transfer_encoding_chunked(values: list[bytes]) -> None:
    check_transfer_encoding(values)
    assert finish([*HOST, *((b"Transfer-Encoding", value) for value in values)], method="POST").chunked


@pytest.mark.parametrize(
    "values",
    [
        [b"gzip, chunked"],
        [b"GZIP,chunked"],
        [b"gzip \t,\t chunked"],
        [b"x-custom, deflate, chunked"],
        [b"identity, chunked"],  # identity is no longer a transfer coding (RFC 7230)
        [b"gzip;level=9, chunked"],
        [b"gzip ;a=b, chunked"],  # OWS before ";" is allowed
        [b'gzip ; q = "a, \\"b\\"" , chunked'],  # a comma inside a quoted-string is not a separator
        [b"gzip", b"chunked"],  # two field lines are one list (RFC 9110 5.3)
        [b"gzip", b"br, chunked"],
    ],
)
def test_transfer_encoding_unknown_coding_is_501(values: list[bytes]) -> None:
    """RFC 9112 6.1: well-formed, chunked last, but a coding the server does not decode."""
    assert status_of(check_transfer_encoding, values) == 501


@pytest.mark.parametrize(
    "values",
    [
        # chunked not the final coding: the length cannot be determined (RFC 9112 6.3: MUST 400)
        [b"gzip"],
        [b"xchunked"],
        [b"chunkedx"],
        [b"chunked, gzip"],
        [b"chunked", b"gzip"],
        [b"identity"],
        # chunked more than once (RFC 9112 6.1: MUST NOT)
        [b"chunked, chunked"],
        [b"chunked", b"chunked"],
        [b"chunked, gzip, chunked"],
        # parameters on chunked, which defines none
        [b"chunked;q=1"],
        [b"gzip, chunked;a=b"],
        # malformed lists and codings
        [b""],
        [b", chunked"],
        [b"chunked,"],
        [b"gzip,, chunked"],
        [b"gzip chunked"],
        [b"gz(ip), chunked"],
        [b'"gzip", chunked'],
        [b"gzip;, chunked"],
        [b"gzip;a, chunked"],
        [b"gzip;a=, chunked"],
        [b'gzip;a="unterminated, chunked'],
        [b"gzip;a=b c, chunked"],
        [b"chunked;"],
        [b"chunked", b""],
    ],
)
def test_transfer_encoding_malformed_is_400(values: list[bytes]) -> None:
    assert status_of(check_transfer_encoding, values) == 400


# -- methods ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method",
    sorted(
        {
            "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH", "PRI",
            "ACL", "BASELINE-CONTROL", "BIND", "CHECKIN", "CHECKOUT", "COPY", "LABEL", "LINK",
            "LOCK", "MERGE", "MKACTIVITY", "MKCALENDAR", "MKCOL", "MKREDIRECTREF", "MKWORKSPACE",
            "MOVE", "ORDERPATCH", "PROPFIND", "PROPPATCH", "REBIND", "REPORT", "SEARCH", "UNBIND",
            "UNCHECKOUT", "UNLINK", "UNLOCK", "UPDATE", "UPDATEREDIRECTREF", "VERSION-CONTROL",
            "QUERY", "PURGE", "SOURCE", "M-SEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE",
        }
    ),
)  # fmt: skip
def test_finish_head_registered_methods(method: str) -> None:
    """Every method of the IANA registry, and the others llhttp knows, reaches the application."""
    assert method in METHODS
    assert finish(HOST, method=method).method == method


@pytest.mark.parametrize(
    "method", ["get", "Get", "post", "FOO", "BREW", "-BLARGH", "*", "GET_PARAMETER", "SETUP"]
)
def test_finish_head_unrecognised_methods_are_501(method: str) -> None:
    """Methods are case-sensitive (RFC 9110 9.1); one the server does not recognise is 501."""
    assert finish_status(HOST, method=method) == 501


def test_finish_head_malformed_beats_unknown_method() -> None:
    assert finish_status([], method="FOO") == 400
    assert finish_status([*HOST, (b"Content-Length", b"x")], method="FOO") == 400
    assert finish_status([*HOST, (b"Transfer-Encoding", b"chunked, gzip")], method="FOO") == 400
    assert finish_status(HOST, method="FOO", target=b"*") == 400
    # ... and an unknown method is answered before the body limit.
    too_large = [*HOST, (b"Content-Length", b"99")]
    assert finish_status(too_large, method="FOO", limits=Limits(body_size=10)) == 501


def test_finish_head_connect() -> None:
    assert finish_status(HOST, method="CONNECT", target=b"example.com:443") == 405


def test_finish_head_bad_targets() -> None:
    assert finish_status(HOST, target=b"*") == 400
    assert finish_status(HOST, target=b"example.com:80") == 400
    assert finish(HOST, method="OPTIONS", target=b"*").target == b"*"


def test_finish_head_request_line_limit() -> None:
    limits = Limits(request_line=32)
    # "GET " + target + " HTTP/1.1" is 32 bytes with a 19-byte target.
    assert finish(HOST, target=b"/" + b"a" * 18, limits=limits).target == b"/" + b"a" * 18
    assert finish_status(HOST, target=b"/" + b"a" * 19, limits=limits) == 414


def test_finish_head_field_limits() -> None:
    limits = Limits(fields=2, field_size=10)
    host = [(b"Host", b"a")]
    finish([*host, (b"X", b"123456789")], limits=limits)
    assert finish_status([*host, (b"X", b"1234567890")], limits=limits) == 431
    assert finish_status([*host, (b"X", b"1"), (b"Y", b"2")], limits=limits) == 431
    finish([(b"Host", b"h" * 6)], limits=limits)
    assert finish_status([(b"Host", b"h" * 7)], limits=limits) == 431


def test_finish_head_body_limit() -> None:
    limits = Limits(body_size=10)
    assert finish([*HOST, (b"Content-Length", b"10")], limits=limits).content_length == 10
    assert finish_status([*HOST, (b"Content-Length", b"11")], limits=limits) == 413
    # A chunked body is checked while it streams, not at head time.
    assert finish([*HOST, (b"Transfer-Encoding", b"chunked")], limits=limits).chunked
    # 0: unlimited.
    unlimited = Limits(body_size=0)
    assert finish([*HOST, (b"Content-Length", b"9" * 18)], limits=unlimited).content_length == 10**18 - 1


def test_finish_head_smuggling_beats_body_limit() -> None:
    """CL+TE is a 400 whatever the length."""
    limits = Limits(body_size=10)
    headers = [*HOST, (b"Content-Length", b"99"), (b"Transfer-Encoding", b"chunked")]
    assert finish_status(headers, limits=limits) == 400


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        ("1.1", [], True),
        ("1.1", [b"close"], False),
        ("1.1", [b"Close"], False),
        ("1.1", [b"keep-alive"], True),
        ("1.1", [b"foo, close"], False),
        ("1.1", [b"foo", b"CLOSE"], False),
        ("1.1", [b"closed"], True),
        ("1.0", [], False),
        ("1.0", [b"keep-alive"], True),
        ("1.0", [b"Keep-Alive"], True),
        ("1.0", [b"keep-alive, close"], False),
        ("1.0", [b"close"], False),
        ("1.0", [b"upgrade"], False),
    ],
)
def test_finish_head_keep_alive(version: str, connection: list[bytes], keep_alive: bool) -> None:
    headers = [*HOST, *((b"Connection", value) for value in connection)]
    assert finish(headers, version=version).keep_alive is keep_alive


@pytest.mark.parametrize(
    ("value", "version", "expected"),
    [
        (b"100-continue", "1.1", True),
        (b"100-CONTINUE", "1.1", True),
        (b"200-ok", "1.1", False),
        (b"100-continue", "1.0", False),
    ],
)
def test_finish_head_expect(value: bytes, version: str, expected: bool) -> None:
    headers = [*HOST, (b"Expect", value), (b"Content-Length", b"1")]
    assert finish(headers, version=version).expect_continue is expected


def test_finish_head_upgrade_needs_connection_upgrade() -> None:
    proposal = finish([*HOST, (b"Connection", b"keep-alive, Upgrade"), (b"Upgrade", b"websocket")])
    assert proposal.upgrade == b"websocket"
    assert proposal.keep_alive is True
    assert finish([*HOST, (b"Upgrade", b"websocket")]).upgrade is None
    assert finish([*HOST, (b"Connection", b"close"), (b"Upgrade", b"h2c")]).upgrade is None


def test_finish_head_keeps_fields_as_given() -> None:
    headers = [(b"hOsT", b"a"), (b"X-A", b"1"), (b"x-a", b"2")]
    assert finish(headers).headers == headers


@pytest.mark.parametrize("value", [b"a b", b"[::1", b"a@b", b"a:b", b"exa\x7fmple", b"a]"])
def test_invalid_host_is_refused_whatever_was_accepted_before(value: bytes) -> None:
    finish([(b"Host", b"example.com:8080")])
    assert finish_status([(b"Host", value)]) == 400
    assert value not in rules._VALID_HOSTS
    assert finish_status([(b"Host", value)]) == 400  # not remembered in either sense


def test_valid_hosts_are_remembered_within_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rules, "_VALID_HOSTS", set())
    for i in range(rules._VALID_HOSTS_LIMIT + 50):  # clients choose Host values: no growth past the bound
        assert finish([(b"Host", b"h%d.example:80" % i)]).headers == [(b"Host", b"h%d.example:80" % i)]
    assert len(rules._VALID_HOSTS) == rules._VALID_HOSTS_LIMIT
    assert finish([(b"Host", b"[::1]:8000")]).version == "1.1"  # past the bound: checked, accepted
    assert finish_status([(b"Host", b"a b")]) == 400
