"""Writes the request corpus: ``NAME.http`` (exact bytes) + ``NAME.json`` (expected events).

The cases below are the source of truth; run ``python tests/protocol/corpus/generate.py``
after editing them. ``tests/protocol/test_corpus.py`` checks that the files on disk
match what this script writes. The expectations are written from RFC 9110/9112 and
docs/ARCHITECTURE rules, never copied from the parser's output. See README.md for
the format.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

CASES: dict[str, dict[str, Any]] = {}

CHUNKED_POST = b"POST /upload HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
CHUNKED_HEADERS = [("Host", "example.com"), ("Transfer-Encoding", "chunked")]

#: Small limits for the limit cases: request line 32 bytes, 3 fields of 32 bytes, 10 body bytes.
SMALL = {"request_line": 32, "fields": 3, "field_size": 32, "body_size": 10}


def _text(data: bytes) -> str:
    return data.decode("latin-1")


def req(
    method: str = "GET",
    target: str = "/",
    version: str = "1.1",
    headers: list[tuple[str, str]] | None = None,
    *,
    keep_alive: bool | None = None,
    content_length: int | None = None,
    chunked: bool = False,
    expect_continue: bool = False,
    upgrade: str | None = None,
) -> dict[str, Any]:
    if headers is None:
        headers = [("Host", "example.com")]
    if keep_alive is None:
        keep_alive = version == "1.1"
    return {
        "request": {
            "method": method,
            "target": target,
            "version": version,
            "headers": [[name.lower(), value] for name, value in headers],  # parsers lower-case names
            "keep_alive": keep_alive,
            "content_length": content_length,
            "chunked": chunked,
            "expect_continue": expect_continue,
            "upgrade": upgrade,
        }
    }


def body(data: str) -> dict[str, str]:
    return {"body": data}


END = "end"


def error(status: int) -> dict[str, int]:
    return {"error": status}


def chunked_post(**kwargs: Any) -> dict[str, Any]:
    return req("POST", "/upload", headers=CHUNKED_HEADERS, chunked=True, **kwargs)


def case(name: str, raw: bytes, events: list[Any], description: str, **extra: Any) -> None:
    assert name not in CASES, name
    CASES[name] = {"raw": raw, "description": description, "events": events, **extra}


def get(target: bytes = b"/", host: bytes = b"example.com") -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"


# ---------------------------------------------------------------------------
# Valid requests

case(
    "get_minimal",
    b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    [req(), END],
    "The smallest valid HTTP/1.1 request: keep-alive by default, no body.",
)
case(
    "get_headers_and_query",
    b"GET /search?q=green+serve&page=2 HTTP/1.1\r\n"
    b"Host: example.com:8080\r\n"
    b"User-Agent: curl/8.5.0\r\n"
    b"Accept: */*\r\n"
    b"X-Empty:\r\n"
    b"X-No-Space:value\r\n"
    b"X-Inner:  a \t b\r\n"
    b"Cookie: a=1; b=2\r\n"
    b"\r\n",
    [
        req(
            target="/search?q=green+serve&page=2",
            headers=[
                ("Host", "example.com:8080"),
                ("User-Agent", "curl/8.5.0"),
                ("Accept", "*/*"),
                ("X-Empty", ""),
                ("X-No-Space", "value"),
                ("X-Inner", "a \t b"),
                ("Cookie", "a=1; b=2"),
            ],
        ),
        END,
    ],
    "Field names keep their case; values lose surrounding whitespace only; empty values are valid.",
)
case(
    "header_obs_text_value",
    b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Name: caf\xc3\xa9 \xff\r\n\r\n",
    [req(headers=[("Host", "example.com"), ("X-Name", _text(b"caf\xc3\xa9 \xff"))]), END],
    "obs-text (bytes 0x80-0xFF) is allowed in field values and passed through as is.",
)
case(
    "header_value_trailing_whitespace",
    b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Pad:  padded \t \r\n\r\n",
    [req(headers=[("Host", "example.com"), ("X-Pad", "padded")]), END],
    "Leading and trailing OWS is not part of a field value (RFC 9112 5): both backends strip it.",
)
case(
    "host_empty",
    b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
    [req(headers=[("Host", "")]), END],
    "An empty Host is allowed when the target has no authority (RFC 9110 7.2).",
)
case(
    "post_content_length",
    b"POST /submit HTTP/1.1\r\nHost: example.com\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\n"
    b"hello world",
    [
        req(
            "POST",
            "/submit",
            headers=[("Host", "example.com"), ("Content-Type", "text/plain"), ("Content-Length", "11")],
            content_length=11,
        ),
        body("hello world"),
        END,
    ],
    "A Content-Length body, delivered as body events followed by end.",
)
case(
    "post_binary_body",
    b"PUT /blob HTTP/1.1\r\nHost: example.com\r\nContent-Length: 8\r\n\r\n\r\n\x00\xff\r\n\r\n",
    [
        req("PUT", "/blob", headers=[("Host", "example.com"), ("Content-Length", "8")], content_length=8),
        body("\r\n\x00\xff\r\n\r\n"),
        END,
    ],
    "Body bytes are opaque: CRLFs, NUL and 0xFF inside a body do not confuse framing.",
)
case(
    "content_length_zero",
    b"POST /empty HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0\r\n\r\n",
    [
        req("POST", "/empty", headers=[("Host", "example.com"), ("Content-Length", "0")], content_length=0),
        END,
    ],
    "Content-Length: 0 ends the request right after the head.",
)
case(
    "content_length_leading_zeros",
    b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 007\r\n\r\n1234567",
    [
        req("POST", headers=[("Host", "example.com"), ("Content-Length", "007")], content_length=7),
        body("1234567"),
        END,
    ],
    "1*DIGIT allows leading zeros.",
)
case(
    "content_length_surrounding_ows",
    b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length:  5 \r\n\r\nhello",
    [
        req("POST", headers=[("Host", "example.com"), ("Content-Length", "5")], content_length=5),
        body("hello"),
        END,
    ],
    "Whitespace around a field value is OWS, not part of it: 'Content-Length:  5 ' is a valid length.",
)
# Optional whitespace (OWS = SP / HTAB, RFC 9110 5.6.3) around field values and list elements
# is not part of them, on both backends and for every field the rules read.
case(
    "ows_tabs_around_content_length",
    b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: \t 5 \t\r\n\r\nhello",
    [
        req("POST", headers=[("Host", "example.com"), ("Content-Length", "5")], content_length=5),
        body("hello"),
        END,
    ],
    "Tabs and spaces around a Content-Length value are OWS: the length is 5.",
)
case(
    "ows_tabs_around_transfer_encoding",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\t \tchunked \t \r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    [
        req("POST", headers=[("Host", "a"), ("Transfer-Encoding", "chunked")], chunked=True),
        body("hello"),
        END,
    ],
    "Tabs and spaces around 'chunked' are OWS (llhttp alone would refuse a tab after it).",
)
case(
    "ows_tab_after_transfer_encoding",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n",
    [req("POST", headers=[("Host", "a"), ("Transfer-Encoding", "chunked")], chunked=True), END],
    "A single tab after 'chunked' is trailing OWS.",
)
case(
    "ows_connection_list",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection:  keep-alive ,\t close \r\n\r\n",
    [req(headers=[("Host", "a"), ("Connection", "keep-alive ,\t close")], keep_alive=False), END],
    "OWS around list elements: 'close' is in the Connection list; inner whitespace stays in the value.",
)
case(
    "ows_connection_keep_alive_http10",
    b"GET / HTTP/1.0\r\nConnection:\tKeep-Alive\t\r\n\r\n",
    [req(version="1.0", headers=[("Connection", "Keep-Alive")], keep_alive=True), END],
    "Tabs around keep-alive on HTTP/1.0.",
)
case(
    "ows_expect_tabs",
    b"POST / HTTP/1.1\r\nHost: a\r\nExpect:\t100-continue \t\r\nContent-Length: 1\r\n\r\nx",
    [
        req(
            "POST",
            headers=[("Host", "a"), ("Expect", "100-continue"), ("Content-Length", "1")],
            content_length=1,
            expect_continue=True,
        ),
        body("x"),
        END,
    ],
    "Tabs around the expectation.",
)
case(
    "ows_host_tabs",
    b"GET / HTTP/1.1\r\nHost: \t example.com:8080\t \r\n\r\n",
    [req(headers=[("Host", "example.com:8080")]), END],
    "Tabs and spaces around the Host value are not part of it.",
)
case(
    "ows_only_value",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-Blank: \t \t\r\n\r\n",
    [req(headers=[("Host", "a"), ("X-Blank", "")]), END],
    "A value of only OWS is an empty value.",
)
case(
    "ows_inside_content_length",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\t5\r\n\r\nhello",
    [error(400)],
    "Whitespace inside a Content-Length value (not around it) is malformed.",
)
case(
    "head_request",
    b"HEAD /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n",
    [req("HEAD", "/index.html"), END],
    "HEAD is parsed like GET.",
)
case(
    "other_methods",
    b"DELETE /item/1 HTTP/1.1\r\nHost: a\r\n\r\n"
    b"PATCH /item/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}"
    b"PUT /item/2 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    [
        req("DELETE", "/item/1", headers=[("Host", "a")]),
        END,
        req("PATCH", "/item/1", headers=[("Host", "a"), ("Content-Length", "2")], content_length=2),
        body("{}"),
        END,
        req("PUT", "/item/2", headers=[("Host", "a"), ("Content-Length", "0")], content_length=0),
        END,
    ],
    "Registered methods other than GET/POST.",
)
case(
    "options_asterisk",
    b"OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n",
    [req("OPTIONS", "*"), END],
    "asterisk-form is valid with OPTIONS.",
)
case(
    "absolute_form",
    b"GET http://example.com/path?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n"
    b"GET HTTPS://Example.COM:8443 HTTP/1.1\r\nHost: Example.COM:8443\r\n\r\n",
    [
        req(target="http://example.com/path?x=1"),
        END,
        req(target="HTTPS://Example.COM:8443", headers=[("Host", "Example.COM:8443")]),
        END,
    ],
    "absolute-form targets (any case of the scheme, no path) are accepted and kept as sent.",
)
case(
    "http10_default_close",
    b"GET / HTTP/1.0\r\n\r\n",
    [req(version="1.0", headers=[]), END],
    "HTTP/1.0 needs no Host and closes by default.",
)
case(
    "http10_keep_alive",
    b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET /2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    [
        req(version="1.0", headers=[("Connection", "Keep-Alive")], keep_alive=True),
        END,
        req(target="/2", version="1.0", headers=[("Connection", "keep-alive")], keep_alive=True),
        END,
    ],
    "HTTP/1.0 with Connection: keep-alive (any case) stays open.",
)
case(
    "http10_keep_alive_and_close",
    b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
    [req(version="1.0", headers=[("Connection", "keep-alive, close")], keep_alive=False), END],
    "close wins over keep-alive.",
)
case(
    "http10_connection_close",
    b"GET / HTTP/1.0\r\nHost: example.com\r\nConnection: close\r\n\r\n",
    [req(version="1.0", headers=[("Host", "example.com"), ("Connection", "close")], keep_alive=False), END],
    "HTTP/1.0 with Connection: close.",
)
case(
    "http11_connection_close",
    b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
    [req(headers=[("Host", "example.com"), ("Connection", "close")], keep_alive=False), END],
    "HTTP/1.1 with Connection: close.",
)
case(
    "http11_connection_token_list",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo\r\nConnection: TE,Close\r\n\r\n",
    [req(headers=[("Host", "a"), ("Connection", "foo"), ("Connection", "TE,Close")], keep_alive=False), END],
    "Connection is a case-insensitive token list and may be repeated.",
)
case(
    "pipelined_gets",
    get(b"/1") + get(b"/2") + get(b"/3"),
    [req(target="/1"), END, req(target="/2"), END, req(target="/3"), END],
    "Three requests in one buffer, answered in order.",
)
case(
    "pipelined_with_bodies",
    b"POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
    b"POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ndef\r\n0\r\n\r\n"
    b"GET /3 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    b"POST /4 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nGET ",
    [
        req("POST", "/1", headers=[("Host", "a"), ("Content-Length", "3")], content_length=3),
        body("abc"),
        END,
        req("POST", "/2", headers=[("Host", "a"), ("Transfer-Encoding", "chunked")], chunked=True),
        body("def"),
        END,
        req(target="/3", version="1.0", headers=[("Connection", "keep-alive")], keep_alive=True),
        END,
        req("POST", "/4", headers=[("Host", "a"), ("Content-Length", "4")], content_length=4),
        body("GET "),
        END,
    ],
    "Pipelined requests with Content-Length and chunked bodies; a body that looks like a request line.",
)
case(
    "empty_line_between_requests",
    get(b"/1") + b"\r\n" + get(b"/2"),
    [req(target="/1"), END, req(target="/2"), END],
    "An empty line before a request line is ignored (RFC 9112 2.2), also between requests.",
)
case(
    "leading_empty_lines",
    b"\r\n\r\n" + get(),
    [req(), END],
    "Leading empty lines are ignored.",
)
case(
    "leading_empty_lines_many",
    b"\r\n" * 20 + get(),
    [req(), END],
    "Any number of leading empty lines is ignored, however they are split.",
)
case(
    "chunked_simple",
    CHUNKED_POST + b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    [chunked_post(), body("hello world"), END],
    "A chunked body.",
)
case(
    "chunked_uppercase_hex_leading_zeros",
    CHUNKED_POST + b"00A\r\n0123456789\r\nf\r\nabcdefghijklmno\r\n0000000000000001\r\n!\r\n000\r\n\r\n",
    [chunked_post(), body("0123456789abcdefghijklmno!"), END],
    "Hex sizes in either case, with leading zeros, up to 16 digits; a last chunk of 000.",
)
case(
    "chunked_extensions",
    CHUNKED_POST
    + b"5;name=value\r\nhello\r\n"
    + b"1 ; flag ;\tk = v\r\n,\r\n"
    + b'6;q="quoted ; \\" value";x\r\n world\r\n'
    + b"0;last=yes\r\n\r\n",
    [chunked_post(), body("hello, world"), END],
    "Chunk extensions: bare names, token and quoted-string values, escaped quotes, OWS around ; and =.",
)
case(
    "chunked_trailers",
    CHUNKED_POST
    + b"3\r\nabc\r\n0\r\nX-Checksum: 900150983cd2\r\nX-Tab:\tv\r\nX-Empty:\r\n\r\n"
    + get(b"/next"),
    [chunked_post(), body("abc"), END, req(target="/next"), END],
    "Trailer fields are read and dropped; the next request follows.",
)
case(
    "chunked_one_byte_chunks",
    CHUNKED_POST + b"".join(b"1\r\n" + bytes([c]) + b"\r\n" for c in b"greenserve") + b"0\r\n\r\n",
    [chunked_post(), body("greenserve"), END],
    "Many tiny chunks.",
)
case(
    "chunked_case_insensitive_coding",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  Chunked\r\n\r\n0\r\n\r\n",
    [req("POST", headers=[("Host", "a"), ("Transfer-Encoding", "Chunked")], chunked=True), END],
    "Transfer codings are case-insensitive; OWS before the value is not part of it.",
)
case(
    "chunked_empty_body_on_get",
    b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    [req(headers=[("Host", "a"), ("Transfer-Encoding", "chunked")], chunked=True), END],
    "Any method may carry a (here empty) chunked body.",
)
case(
    "expect_continue",
    b"POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\ndata",
    [
        req(
            "POST",
            "/up",
            headers=[("Host", "a"), ("Expect", "100-continue"), ("Content-Length", "4")],
            content_length=4,
            expect_continue=True,
        ),
        body("data"),
        END,
    ],
    "Expect: 100-continue on HTTP/1.1.",
)
case(
    "expect_continue_case_insensitive",
    b"POST /up HTTP/1.1\r\nHost: a\r\nExpect:  100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"4\r\ndata\r\n0\r\n\r\n",
    [
        req(
            "POST",
            "/up",
            headers=[("Host", "a"), ("Expect", "100-Continue"), ("Transfer-Encoding", "chunked")],
            chunked=True,
            expect_continue=True,
        ),
        body("data"),
        END,
    ],
    "The expectation is case-insensitive; OWS before it is not part of the value.",
)
case(
    "expect_continue_trailing_ows",
    b"POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue \r\nContent-Length: 1\r\n\r\nx",
    [
        req(
            "POST",
            "/up",
            headers=[("Host", "a"), ("Expect", "100-continue"), ("Content-Length", "1")],
            content_length=1,
            expect_continue=True,
        ),
        body("x"),
        END,
    ],
    "Trailing OWS is not part of the Expect value either.",
)
case(
    "expect_other_value",
    b"POST /up HTTP/1.1\r\nHost: a\r\nExpect: something-else\r\nContent-Length: 1\r\n\r\nx",
    [
        req(
            "POST",
            "/up",
            headers=[("Host", "a"), ("Expect", "something-else"), ("Content-Length", "1")],
            content_length=1,
        ),
        body("x"),
        END,
    ],
    "Only 100-continue sets expect_continue.",
)
case(
    "expect_continue_http10",
    b"POST /up HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
    [
        req(
            "POST",
            "/up",
            version="1.0",
            headers=[("Expect", "100-continue"), ("Content-Length", "1")],
            content_length=1,
        ),
        body("x"),
        END,
    ],
    "100 Continue is an HTTP/1.1 mechanism: ignored on HTTP/1.0.",
)
case(
    "upgrade_take_pending",
    b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    b"\x81\x05hello\x00\xff",
    [
        req(
            target="/chat",
            headers=[("Host", "a"), ("Connection", "Upgrade"), ("Upgrade", "websocket")],
            upgrade="websocket",
        ),
        END,
    ],
    "The parser pauses after an upgrade proposal; take_pending() returns what followed, verbatim.",
    after={"take_pending": _text(b"\x81\x05hello\x00\xff")},
)
case(
    "upgrade_take_pending_nothing",
    b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    [
        req(
            target="/chat",
            headers=[("Host", "a"), ("Connection", "upgrade"), ("Upgrade", "websocket")],
            upgrade="websocket",
        ),
        END,
    ],
    "Nothing after the upgrade request: take_pending() returns nothing.",
    after={"take_pending": ""},
)
case(
    "upgrade_declined_resume",
    b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: h2c\r\n\r\n"
    + get(b"/next")
    + b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok",
    [
        req(
            target="/chat",
            headers=[("Host", "a"), ("Connection", "keep-alive, Upgrade"), ("Upgrade", "h2c")],
            upgrade="h2c",
        ),
        END,
    ],
    "A declined upgrade: resume() parses the requests that followed as HTTP/1.1.",
    after={
        "resume": [
            req(target="/next"),
            END,
            req("POST", "/x", headers=[("Host", "a"), ("Content-Length", "2")], content_length=2),
            body("ok"),
            END,
        ]
    },
)
case(
    "upgrade_with_body",
    b"POST /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 3\r\n\r\n"
    b"abcPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    [
        req(
            "POST",
            "/up",
            headers=[("Host", "a"), ("Connection", "Upgrade"), ("Upgrade", "h2c"), ("Content-Length", "3")],
            content_length=3,
            upgrade="h2c",
        ),
        body("abc"),
        END,
    ],
    "The pause comes after the upgrade request's body; what follows is the new protocol's.",
    after={"take_pending": "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
)
case(
    "upgrade_without_connection_upgrade",
    b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n" + get(b"/2"),
    [req(headers=[("Host", "a"), ("Upgrade", "websocket")]), END, req(target="/2"), END],
    "Upgrade without 'Connection: upgrade' proposes nothing: no pause.",
)
case(
    "eof_after_complete_request",
    get() + b"\r\n",
    [req(), END],
    "EOF between requests (even after an empty line) is a clean close.",
    eof=True,
)
case(
    "eof_without_data",
    b"\r\n",
    [],
    "EOF after nothing but an empty line is a clean close.",
    eof=True,
)

# Limits, at and over the boundary (SMALL limits).
case(
    "limit_request_line_exact",
    b"GET /" + b"a" * 18 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    [req(target="/" + "a" * 18, headers=[("Host", "a")]), END],
    "A request line of exactly request_line (32) bytes is accepted, however it is split.",
    limits=SMALL,
)
case(
    "limit_fields_exact",
    b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n",
    [req(headers=[("Host", "a"), ("A", "1"), ("B", "2")]), END],
    "Exactly `fields` (3) header fields are accepted.",
    limits=SMALL,
)
case(
    "limit_field_size_exact",
    b"GET / HTTP/1.1\r\nHost: a\r\nA: " + b"x" * 31 + b"\r\n\r\n",
    [req(headers=[("Host", "a"), ("A", "x" * 31)]), END],
    "A field whose name and value take exactly field_size (32) bytes is accepted.",
    limits=SMALL,
)
case(
    "limit_everything_at_maximum",
    b"GET /"
    + b"a" * 18
    + b" HTTP/1.1\r\nHost: "
    + b"h" * 28
    + b"\r\nX-A: "
    + b"x" * 29
    + b"\r\nX-B: "
    + b"y" * 29
    + b"\r\n\r\n",
    [
        req(
            target="/" + "a" * 18,
            headers=[("Host", "h" * 28), ("X-A", "x" * 29), ("X-B", "y" * 29)],
        ),
        END,
    ],
    "Request line, field count and every field size each exactly at their limit: the whole "
    "head is within limits and must be accepted.",
    limits=SMALL,
)
case(
    "limit_body_exact",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789",
    [
        req("POST", headers=[("Host", "a"), ("Content-Length", "10")], content_length=10),
        body("0123456789"),
        END,
    ],
    "A Content-Length body of exactly body_size (10) bytes.",
    limits=SMALL,
)
case(
    "limit_chunked_body_exact",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n",
    [
        req("POST", headers=[("Host", "a"), ("Transfer-Encoding", "chunked")], chunked=True),
        body("helloworld"),
        END,
    ],
    "A chunked body of exactly body_size (10) bytes.",
    limits=SMALL,
)
case(
    "limit_body_unlimited",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999999999999\r\n\r\nabc",
    [
        req(
            "POST",
            headers=[("Host", "a"), ("Content-Length", "999999999999999999")],
            content_length=10**18 - 1,
        ),
        body("abc"),
    ],
    "body_size 0 means no limit: an 18-digit length is accepted and the body streams.",
    limits={"body_size": 0},
)

# Methods: case-sensitive tokens (RFC 9110 9.1). Registered ones reach the application on both
# backends, including those llhttp does not know; any other token is 501; a non-token is 400.
case(
    "method_registered_unknown_to_llhttp",
    b"BASELINE-CONTROL /v HTTP/1.1\r\nHost: a\r\n\r\n"
    b"VERSION-CONTROL /v HTTP/1.1\r\nHost: a\r\n\r\n"
    b"UPDATEREDIRECTREF /v HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok"
    b"LABEL /v HTTP/1.1\r\nHost: a\r\n\r\n",
    [
        req("BASELINE-CONTROL", "/v", headers=[("Host", "a")]),
        END,
        req("VERSION-CONTROL", "/v", headers=[("Host", "a")]),
        END,
        req("UPDATEREDIRECTREF", "/v", headers=[("Host", "a"), ("Content-Length", "2")], content_length=2),
        body("ok"),
        END,
        req("LABEL", "/v", headers=[("Host", "a")]),
        END,
    ],
    "Methods of the IANA registry that llhttp does not know reach the application on both backends.",
)
case(
    "method_known_to_llhttp",
    b"PURGE /c HTTP/1.1\r\nHost: a\r\n\r\n"
    b"QUERY /q HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nq=1"
    b"M-SEARCH /ssdp HTTP/1.1\r\nHost: a\r\n\r\n",
    [
        req("PURGE", "/c", headers=[("Host", "a")]),
        END,
        req("QUERY", "/q", headers=[("Host", "a"), ("Content-Length", "3")], content_length=3),
        body("q=1"),
        END,
        req("M-SEARCH", "/ssdp", headers=[("Host", "a")]),
        END,
    ],
    "Methods llhttp knows that are not in the IANA registry (PURGE, QUERY, M-SEARCH) are passed on.",
)
case(
    "unknown_method_token",
    b"FOO /x HTTP/1.1\r\nHost: a\r\n\r\n",
    [error(501)],
    "A well-formed method the server does not recognise: 501 Not Implemented (RFC 9110 9.1).",
)
case(
    "unknown_method_dash",
    b"-BLARGH / HTTP/1.1\r\nHost: a\r\n\r\n",
    [error(501)],
    "Any token is a well-formed method: unknown, so 501.",
)
case(
    "unknown_method_lowercase",
    b"get / HTTP/1.1\r\nHost: a\r\n\r\n",
    [error(501)],
    "Methods are case-sensitive: 'get' is not GET but an unknown method, 501 on both backends.",
)
case(
    "unknown_method_mixed_case",
    b"Post / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok",
    [error(501)],
    "'Post' is not POST: 501, and its body is never read.",
)
case(
    "unknown_method_rtsp",
    b"SETUP /stream HTTP/1.1\r\nHost: a\r\n\r\n",
    [error(501)],
    "An RTSP method (llhttp knows it for RTSP only) on HTTP: unknown, 501.",
)
case(
    "unknown_method_after_good",
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBREW /pot HTTP/1.1\r\nHost: a\r\n\r\n",
    [req(headers=[("Host", "a")]), END, error(501)],
    "An unknown method pipelined behind a good request is answered after it.",
)
case(
    "unknown_method_missing_host",
    b"FOO /x HTTP/1.1\r\nUser-Agent: x\r\n\r\n",
    [error(400)],
    "A malformed request is 400 whatever its method: the 400 rules come before the method's 501.",
)
for _name, _method in [("paren", b"G(T"), ("quote", b'GE"T'), ("slash", b"GET/"), ("colon", b"GET:")]:
    case(
        f"method_invalid_{_name}",
        _method + b" / HTTP/1.1\r\nHost: a\r\n\r\n",
        [error(400)],
        f"Method {_method!r} is not a token: malformed, 400.",
    )

# ---------------------------------------------------------------------------
# Framing errors (request smuggling)

case(
    "cl_and_te",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    [error(400)],
    "Content-Length and Transfer-Encoding together: refused.",
)
case(
    "te_and_cl",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    [error(400)],
    "Transfer-Encoding then Content-Length: refused too.",
)
case(
    "cl_duplicate_same",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    [error(400)],
    "Two Content-Length fields, even equal: refused.",
)
case(
    "cl_duplicate_different",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    [error(400)],
    "Two different Content-Length fields.",
)
case(
    "cl_list_form",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello",
    [error(400)],
    "The list form '5, 5' is refused.",
)
for _name, _value in [
    ("plus", b"+5"),
    ("minus", b"-5"),
    ("inner_space", b"5 5"),
    ("underscore", b"1_0"),
    ("hex", b"0x5"),
    ("empty", b""),
    ("overflow", b"99999999999999999999"),
    ("nineteen_digits", b"1000000000000000000"),
    ("non_ascii_digit", "\u0665".encode()),
    ("letters", b"five"),
]:
    case(
        f"cl_invalid_{_name}",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + _value + b"\r\n\r\nhello",
        [error(400)],
        f"Content-Length {_value!r} is not 1*DIGIT (or is too large to represent): 400.",
    )
for _name, _value, _why in [
    ("gzip", b"gzip", "chunked is not the final coding: the length cannot be determined (RFC 9112 6.3)"),
    ("identity", b"identity", "not chunked-final (identity is not a transfer coding any more)"),
    ("xchunked", b"xchunked", "a coding named 'xchunked' is not chunked: not chunked-final (RFC 9112 6.3)"),
    ("chunked_gzip", b"chunked, gzip", "chunked is not the final coding (RFC 9112 6.3)"),
    ("chunked_chunked", b"chunked, chunked", "chunked applied twice (RFC 9112 6.1 MUST NOT)"),
    ("empty", b"", "an empty coding list"),
    ("leading_comma", b", chunked", "an empty list element in a framing field"),
    ("trailing_comma", b"chunked,", "an empty list element in a framing field"),
    ("chunked_params", b"chunked;q=1", "chunked defines no parameters"),
    ("not_a_token", b"gz(ip), chunked", "a coding name that is not a token"),
    ("missing_comma", b"gzip chunked", "two codings without a comma"),
]:
    case(
        f"te_invalid_{_name}",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + _value + b"\r\n\r\n0\r\n\r\n",
        [error(400)],
        f"Transfer-Encoding {_value!r}: 400, {_why}.",
    )
for _name, _value in [
    ("gzip_chunked", b"gzip, chunked"),
    ("ows", b"gzip \t,\t chunked"),
    ("parameters", b'gzip;level="9, max", chunked'),
    ("identity_chunked", b"identity, chunked"),
]:
    case(
        f"te_unsupported_{_name}",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + _value + b"\r\n\r\n0\r\n\r\n",
        [error(501)],
        f"Transfer-Encoding {_value!r}: well-formed, chunked last, but a coding the server does not decode:"
        " 501 (RFC 9112 6.1).",
    )
case(
    "te_unsupported_two_fields",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    [error(501)],
    "Two Transfer-Encoding field lines are one list, 'gzip, chunked': 501.",
)
case(
    "te_unsupported_with_content_length",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: gzip, chunked\r\n\r\nhello",
    [error(400)],
    "Content-Length with Transfer-Encoding is a smuggling attempt (400) before it is an unknown coding.",
)
case(
    "te_unsupported_http10",
    b"POST / HTTP/1.0\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    [error(400)],
    "Transfer-Encoding in HTTP/1.0 is faulty framing (400, RFC 9112 6.1) whatever the codings.",
)
case(
    "te_repeated_field",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\n",
    [error(400)],
    "Two Transfer-Encoding fields make the coding list 'chunked, chunked'.",
)
case(
    "te_http10",
    b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    [error(400)],
    "Transfer-Encoding in an HTTP/1.0 request (RFC 9112 6.1).",
)

# Chunked framing errors: the head is fine, the body is not.
for _name, _chunks, _before in [
    ("plus_sign", b"+5\r\nhello\r\n0\r\n\r\n", ""),
    ("minus_sign", b"-5\r\nhello\r\n0\r\n\r\n", ""),
    ("space_before_size", b" 5\r\nhello\r\n0\r\n\r\n", ""),
    ("space_after_size", b"5 \r\nhello\r\n0\r\n\r\n", ""),
    ("tab_after_size", b"5\t\r\nhello\r\n0\r\n\r\n", ""),
    ("underscore", b"1_0\r\n0123456789abcdef\r\n0\r\n\r\n", ""),
    ("hex_prefix", b"0x5\r\nhello\r\n0\r\n\r\n", ""),
    ("not_hex", b"g\r\nhello\r\n0\r\n\r\n", ""),
    ("missing_size", b"\r\nhello\r\n0\r\n\r\n", ""),
    ("extension_without_size", b";ext\r\nhello\r\n0\r\n\r\n", ""),
    ("seventeen_digits", b"00000000000000005\r\nhello\r\n0\r\n\r\n", ""),
    ("bare_lf_after_size", b"5\nhello\r\n0\r\n\r\n", ""),
    ("bare_lf_after_data", b"5\r\nhello\n0\r\n\r\n", "hello"),
    ("missing_crlf_after_data", b"5\r\nhelloXX0\r\n\r\n", "hello"),
    ("cr_without_lf_after_data", b"5\r\nhello\rX0\r\n\r\n", "hello"),
    ("data_longer_than_size", b"3\r\nhello\r\n0\r\n\r\n", "hel"),
    ("bare_cr_in_extension", b"5;a\rb\r\nhello\r\n0\r\n\r\n", ""),
    ("bad_extension_value", b"5;a=b c\r\nhello\r\n0\r\n\r\n", ""),
    ("unterminated_quoted_extension", b'5;a="b\r\nhello\r\n0\r\n\r\n', ""),
    ("bare_lf_in_last_chunk", b"0\n\r\n", ""),
    ("bare_lf_ending_trailers", b"5\r\nhello\r\n0\r\n\n", "hello"),
    ("trailer_without_colon", b"0\r\nnot a field\r\n\r\n", ""),
    ("trailer_space_before_colon", b"0\r\nX-T : v\r\n\r\n", ""),
    ("trailer_obs_fold", b"0\r\nX-T: v\r\n folded\r\n\r\n", ""),
    ("trailer_control_char", b"0\r\nX-T: a\x07b\r\n\r\n", ""),
]:
    case(
        f"chunked_invalid_{_name}",
        CHUNKED_POST + _chunks,
        [chunked_post(), *([body(_before)] if _before else []), error(400)],
        f"Strict chunked framing: {_chunks!r} is refused (400) after any body bytes read before it.",
    )
case(
    "chunked_line_too_long",
    CHUNKED_POST + b"5;" + b"x" * 4100 + b"\r\nhello\r\n0\r\n\r\n",
    [chunked_post(), error(400)],
    "A chunk-size line (with extensions) longer than 4096 bytes.",
)
case(
    "chunked_huge_size",
    CHUNKED_POST + b"FFFFFFFFFFFFFFFF\r\nhello",
    [chunked_post(), error(413)],
    "A 16-digit chunk size over the body limit.",
)
case(
    "chunked_body_over_limit",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n",
    [
        req("POST", headers=[("Host", "a"), ("Transfer-Encoding", "chunked")], chunked=True),
        body("hello"),
        error(413),
    ],
    "The chunk that takes a streamed chunked body over body_size (10) gets 413.",
    limits=SMALL,
)
case(
    "chunked_too_many_trailers",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n",
    [req("POST", headers=[("Host", "a"), ("Transfer-Encoding", "chunked")], chunked=True), error(431)],
    "More trailer fields than `fields` (3).",
    limits=SMALL,
)
case(
    "chunked_trailer_too_long",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: " + b"x" * 40 + b"\r\n\r\n",
    [req("POST", headers=[("Host", "a"), ("Transfer-Encoding", "chunked")], chunked=True), error(400)],
    "A trailer line longer than field_size (32) is refused.",
    limits=SMALL,
)

# ---------------------------------------------------------------------------
# Head syntax errors

case(
    "obs_fold",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: part one\r\n part two\r\n\r\n",
    [error(400)],
    "obs-fold (a line starting with SP) is refused (RFC 9112 5.2).",
)
case(
    "obs_fold_tab",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: part one\r\n\tpart two\r\n\r\n",
    [error(400)],
    "obs-fold with HTAB.",
)
case(
    "whitespace_first_field_line",
    b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
    [error(400)],
    "Whitespace before the first field line.",
)
case(
    "whitespace_before_colon",
    b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
    [error(400)],
    "Whitespace between a field name and the colon (RFC 9112 5.1).",
)
case(
    "tab_before_colon",
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 0\r\n\r\n",
    [error(400)],
    "HTAB between a field name and the colon.",
)
case(
    "field_without_colon",
    b"GET / HTTP/1.1\r\nHost: a\r\nNo colon here\r\n\r\n",
    [error(400)],
    "A field line without a colon.",
)
case(
    "field_empty_name",
    b"GET / HTTP/1.1\r\nHost: a\r\n: value\r\n\r\n",
    [error(400)],
    "A field line with an empty name.",
)
case(
    "bare_cr_between_fields",
    b"GET / HTTP/1.1\r\nHost: a\rX-Other: b\r\n\r\n",
    [error(400)],
    "A bare CR used as a line end.",
)
case(
    "bare_cr_in_value",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-V: a\rb\r\n\r\n",
    [error(400)],
    "A bare CR inside a field value.",
)
case(
    "bare_cr_in_request_line",
    b"GET /\r HTTP/1.1\r\nHost: a\r\n\r\n",
    [error(400)],
    "A bare CR inside the request line.",
)
case(
    "bare_lf_line_endings",
    b"GET / HTTP/1.1\nHost: a\n\n",
    [error(400)],
    "Bare LF line ends throughout: refused at once, without waiting for a CRLF CRLF that never comes.",
)
case(
    "bare_lf_incomplete_head",
    b"GET / HTTP/1.1\nHost: a\n",
    [error(400)],
    "An incomplete head with a bare LF is refused at once (no EOF needed).",
)
case(
    "bare_lf_after_request_line",
    b"GET / HTTP/1.1\nHost: a\r\n\r\n",
    [error(400)],
    "A bare LF ending the request line.",
)
case(
    "bare_lf_between_fields",
    b"GET / HTTP/1.1\r\nHost: a\nX-B: b\r\n\r\n",
    [error(400)],
    "A bare LF between field lines.",
)
case(
    "bare_lf_ending_head",
    b"GET / HTTP/1.1\r\nHost: a\r\n\n",
    [error(400)],
    "A head ended by CRLF LF.",
)
case(
    "bare_lf_leading",
    b"\n" + get(),
    [error(400)],
    "A bare LF before the request line is not an empty line.",
)
case(
    "bare_lf_after_leading_crlf",
    b"\r\n\n" + get(),
    [error(400)],
    "CRLF then a bare LF before the request line.",
)
case(
    "bare_lf_between_requests",
    get(b"/1") + b"\n" + get(b"/2"),
    [req(target="/1"), END, error(400)],
    "A bare LF between pipelined requests: the first is answered, then 400.",
)
case(
    "nul_in_field_name",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-\x00Name: v\r\n\r\n",
    [error(400)],
    "NUL in a field name.",
)
case(
    "nul_in_field_value",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-Name: a\x00b\r\n\r\n",
    [error(400)],
    "NUL in a field value.",
)
case(
    "nul_in_target",
    b"GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n",
    [error(400)],
    "NUL in the request target.",
)
case(
    "nul_after_unknown_method",
    b"ET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n",
    [error(400)],
    "NUL in a head whose method llhttp does not know: 400 (NUL), not 501, however it is split.",
)
case(
    "nul_in_method",
    b"G\x00T / HTTP/1.1\r\nHost: a\r\n\r\n",
    [error(400)],
    "NUL in the method.",
)
for _name, _char in [("bel", b"\x07"), ("del", b"\x7f"), ("soh", b"\x01"), ("esc", b"\x1b"), ("vt", b"\x0b")]:
    case(
        f"control_char_in_value_{_name}",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Ctl: a" + _char + b"b\r\n\r\n",
        [error(400)],
        f"Control character {_char!r} in a field value: not field-vchar, obs-text, SP or HTAB.",
    )
case(
    "control_char_in_name",
    b"GET / HTTP/1.1\r\nHost: a\r\nX\x7fName: v\r\n\r\n",
    [error(400)],
    "DEL in a field name.",
)
case(
    "control_char_in_target",
    b"GET /a\x7fb HTTP/1.1\r\nHost: a\r\n\r\n",
    [error(400)],
    "DEL in the request target.",
)
case(
    "non_ascii_method",
    b"G\xc3\x89T / HTTP/1.1\r\nHost: a\r\n\r\n",
    [error(400)],
    "Non-ASCII bytes in the method.",
)
case(
    "non_ascii_field_name",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-Caf\xc3\xa9: v\r\n\r\n",
    [error(400)],
    "Non-ASCII bytes in a field name.",
)
case(
    "non_ascii_target",
    b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
    [error(400)],
    "Raw non-ASCII bytes in the request target (they must be percent-encoded).",
)
case(
    "request_line_double_space",
    b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
    [error(400)],
    "Two spaces between method and target: the request line is method SP target SP version.",
)
case(
    "request_line_space_in_target",
    b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
    [error(400)],
    "A space inside the target.",
)
case(
    "request_line_trailing_space",
    b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
    [error(400)],
    "A space after the version.",
)
case(
    "request_line_leading_space",
    b" GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    [error(400)],
    "A space before the method.",
)
case(
    "request_line_tab_separator",
    b"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n",
    [error(400)],
    "HTAB instead of SP in the request line.",
)

# Versions: a well-formed version of another major version is 505; malformed is 400.
for _name, _version, _status in [
    ("http20", b"HTTP/2.0", 505),
    ("http30", b"HTTP/3.0", 505),
    ("http99", b"HTTP/9.9", 505),
    ("http09", b"HTTP/0.9", 400),
    ("lowercase", b"http/1.1", 400),
    ("no_minor", b"HTTP/1", 400),
    ("no_dot", b"HTTP/11", 400),
    ("letter_minor", b"HTTP/1.x", 400),
    ("misspelt", b"HTTTP/1.1", 400),
    ("two_digit_minor", b"HTTP/1.10", 400),
    ("garbage", b"HTTP/1.1x", 400),
]:
    case(
        f"version_{_name}",
        b"GET / " + _version + b"\r\nHost: a\r\n\r\n",
        [error(_status)],
        f"Request line version {_version!r}: {_status}.",
    )
for _name, _version in [("http12", b"HTTP/1.2"), ("http19", b"HTTP/1.9")]:
    case(
        f"version_{_name}",
        b"GET / " + _version + b"\r\nHost: a\r\nConnection: keep-alive\r\n\r\n"
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        [req(headers=[("Host", "a"), ("Connection", "keep-alive")]), END, req(headers=[("Host", "a")]), END],
        f"{_version.decode()}: a later minor version of HTTP/1 is processed as HTTP/1.1 (RFC 9110 2.5).",
    )
case(
    "version_missing_http09_style",
    b"GET /\r\n\r\n",
    [error(400)],
    "An HTTP/0.9-style request line without a version.",
)
case(
    "http2_preface",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    [error(505)],
    "The HTTP/2 connection preface on an HTTP/1.1 port: 505.",
)

# Host and targets
case(
    "missing_host",
    b"GET / HTTP/1.1\r\nUser-Agent: x\r\n\r\n",
    [error(400)],
    "HTTP/1.1 without Host (RFC 9112 3.2).",
)
case(
    "duplicate_host",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    [error(400)],
    "Two Host fields.",
)
case(
    "duplicate_host_same_value",
    b"GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n",
    [error(400)],
    "Two Host fields, equal and on HTTP/1.0.",
)
for _name, _host in [
    ("space", b"bad host"),
    ("path", b"example.com/path"),
    ("userinfo", b"user@example.com"),
]:
    case(
        f"host_invalid_{_name}",
        b"GET / HTTP/1.1\r\nHost: " + _host + b"\r\n\r\n",
        [error(400)],
        f"Host {_host!r} is not uri-host [':' port]: a server MUST answer 400 (RFC 9112 3.2).",
    )
case(
    "asterisk_with_get",
    b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
    [error(400)],
    "asterisk-form with a method other than OPTIONS.",
)
case(
    "authority_form_with_get",
    b"GET example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    [error(400)],
    "authority-form is only for CONNECT.",
)
case(
    "relative_target",
    b"GET index.html HTTP/1.1\r\nHost: a\r\n\r\n",
    [error(400)],
    "A relative target.",
)
case(
    "absolute_form_other_scheme",
    b"GET ftp://example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\n",
    [error(400)],
    "absolute-form with a scheme other than http or https.",
)
case(
    "connect",
    b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    [error(405)],
    "CONNECT: this is not a proxy (405).",
)

# Limits exceeded (SMALL limits unless said otherwise).
case(
    "limit_request_line_over",
    b"GET /" + b"a" * 19 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    [error(414)],
    "A request line one byte over request_line (32).",
    limits=SMALL,
)
case(
    "limit_request_line_incomplete",
    b"GET /" + b"a" * 100,
    [error(414)],
    "A request line that is already longer than the limit is refused before it ends.",
    limits=SMALL,
)
case(
    "limit_fields_over",
    b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
    [error(431)],
    "One field more than `fields` (3).",
    limits=SMALL,
)
case(
    "limit_field_size_over",
    b"GET / HTTP/1.1\r\nHost: a\r\nA: " + b"x" * 32 + b"\r\n\r\n",
    [error(431)],
    "A field one byte over field_size (32).",
    limits=SMALL,
)
case(
    "limit_head_incomplete",
    b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: " + b"y" * 400,
    [error(431)],
    "A head already larger than any allowed head is refused before it ends.",
    limits=SMALL,
)
case(
    "limit_head_default_limits",
    b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X:\r\n" * 100 + b"\r\n",
    [error(431)],
    "101 fields: one more than the default limit of 100.",
)
case(
    "limit_body_content_length_over",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n01234567890",
    [error(413)],
    "A Content-Length over body_size (10) is refused at head time.",
    limits=SMALL,
)
case(
    "limit_upgrade_pending_over",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n" + b"z" * 200,
    [
        req(headers=[("Host", "a"), ("Connection", "upgrade"), ("Upgrade", "x")], upgrade="x"),
        END,
        error(400),
    ],
    "After an upgrade request at most one maximal head (head_size) is buffered; more is 400.",
    limits=SMALL,
)

# EOF in the middle of a request.
for _name, _raw, _events in [
    ("request_line", b"GET /inde", []),
    ("head", b"GET / HTTP/1.1\r\nHost: a\r\n", []),
    ("head_cr", b"GET / HTTP/1.1\r\nHost: a\r\n\r", []),
    ("after_leading_crlf", b"\r\nGE", []),
    (
        "content_length_body",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel",
        [req("POST", headers=[("Host", "a"), ("Content-Length", "5")], content_length=5), body("hel")],
    ),
    (
        "content_length_body_empty",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
        [req("POST", headers=[("Host", "a"), ("Content-Length", "5")], content_length=5)],
    ),
    ("chunk_size", CHUNKED_POST + b"5", [chunked_post()]),
    ("chunk_data", CHUNKED_POST + b"5\r\nhel", [chunked_post(), body("hel")]),
    ("chunk_data_crlf", CHUNKED_POST + b"5\r\nhello\r", [chunked_post(), body("hello")]),
    ("last_chunk", CHUNKED_POST + b"0\r\n", [chunked_post()]),
    ("trailer", CHUNKED_POST + b"0\r\nX-T: v\r\n", [chunked_post()]),
    ("second_request", get(b"/1") + b"GET /2 HTTP/1.1\r\n", [req(target="/1"), END]),
]:
    case(
        f"eof_in_{_name}",
        _raw,
        [*_events, error(400)],
        "The connection closed in the middle of a request: 400 after what was complete.",
        eof=True,
    )

# Bad requests pipelined behind good ones.
case(
    "pipelined_bad_after_good",
    get(b"/1")
    + b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok"
    + b"GET /3 HTTP/1.1\r\n\r\n"
    + get(b"/never"),
    [
        req(target="/1"),
        END,
        req("POST", "/2", headers=[("Host", "a"), ("Content-Length", "2")], content_length=2),
        body("ok"),
        END,
        error(400),
    ],
    "Good requests' events come first, then the error; nothing after it is parsed.",
)
case(
    "pipelined_smuggling_after_good",
    get(b"/1")
    + b"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    + get(b"/never"),
    [req(target="/1"), END, error(400)],
    "A CL+TE request behind a good one.",
)
case(
    "pipelined_bad_chunk_after_good",
    get(b"/1") + CHUNKED_POST + b"3\r\nabc\r\nzz\r\n\r\n" + get(b"/never"),
    [req(target="/1"), END, chunked_post(), body("abc"), error(400)],
    "A bad chunk size in the second request.",
)


def write(directory: Path = HERE) -> None:
    for name, spec in CASES.items():
        data = dict(spec)
        raw = data.pop("raw")
        (directory / f"{name}.http").write_bytes(raw)
        (directory / f"{name}.json").write_text(render_json(data), encoding="utf-8")


def _events_json(events: list[Any], indent: str) -> str:
    if not events:
        return "[]"
    inner = ",\n".join(f"{indent}  {json.dumps(event)}" for event in events)
    return f"[\n{inner}\n{indent}]"


def render_json(data: dict[str, Any]) -> str:
    """Pretty JSON with one event per line."""
    lines = []
    for key, value in data.items():
        if key == "events":
            text = _events_json(value, "  ")
        elif key == "after" and "resume" in value:
            text = '{"resume": ' + _events_json(value["resume"], "  ") + "}"
        else:
            text = json.dumps(value)
        lines.append(f"  {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
    print(f"wrote {len(CASES)} cases")
