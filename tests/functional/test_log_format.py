"""``--log-format text|json``: one log line per event, whatever a client sends (tier c).

Hostile requests go to a real ``greenserve`` over raw sockets; the test then
reads every line the server wrote. In JSON mode each line must be a JSON
object and the request's values must come back exactly; in text mode the
client's bytes must be escaped so that no request can end its line or start
a forged one.
"""

from __future__ import annotations

import base64
import datetime
import json

import pytest

from tests.conftest import raw_exchange, request_bytes, wait_until

pytestmark = pytest.mark.timeout(60)

#: Every atom a client can influence, plus a response header.
FORMAT = 'ACCESS %(h)s %(u)s "%(r)s" %(U)s %(q)s "%(a)s" "%(f)s" "%({x-custom}i)s" "%({x-app}o)s" %(s)s'

AUTH_USER = b'eve\nforged "user'
BIG_REFERER = b'r"\\' * 2000  # 6,000 bytes: under the 8,190-byte header limit
#: A target whose path decodes to a newline, a quote, a backslash, ESC, UTF-8 and an invalid byte.
TARGET = b"/p%0Aforged%22q%5C%1B%C3%A9%FF?q=%22x%22"
HEADERS = [
    (b"Host", b"localhost"),
    (b"User-Agent", b'a"b\\c \xc3\xa9 \xff'),  # a UTF-8 e-acute, then a byte that is not UTF-8
    (b"Referer", BIG_REFERER),
    (b"Authorization", b"Basic " + base64.b64encode(AUTH_USER + b":secret")),
    (b"X-Custom", b'"quoted" \\ back'),
    (b"Connection", b"close"),
]

#: Refused by the parser (400) before any application or access log sees them.
REFUSED = {
    "quote-newline": b'User-Agent: a"\nb',
    "bare-cr": b"User-Agent: a\rb",
    "ansi-escape": b"User-Agent: \x1b[31mred",
    "nul": b"User-Agent: a\x00b",
}

EXPECTED_LINE = (
    "ACCESS 127.0.0.1 eve\\x0Aforged \\x22user"
    ' "GET /p%0Aforged%22q%5C%1B%C3%A9%FF?q=%22x%22 HTTP/1.1"'
    " /p\\x0Aforged\\x22q\\\\\\x1B\\xC3\\xA9\\xFF q=%22x%22"
    ' "a\\x22b\\\\c \\xC3\\xA9 \\xFF"'
    ' "' + "r\\x22\\\\" * 2000 + '"'
    ' "\\x22quoted\\x22 \\\\ back"'
    ' "a\\x22b\\\\c"'
    " 200"
)


def _count(server, text: str) -> int:
    """Lines of the server's output containing ``text`` so far."""
    return sum(text in line for line in list(server.lines))


def _hostile_request() -> bytes:
    head = b"GET " + TARGET + b" HTTP/1.1\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in HEADERS)
    return head + b"\r\n"


def _send_all(server) -> None:
    with server.connect() as sock:
        response = raw_exchange(sock, _hostile_request())
    assert response.startswith(b"HTTP/1.1 200 "), response[:200]
    for name, header in REFUSED.items():
        with server.connect() as sock:
            response = raw_exchange(sock, b"GET / HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n")
        assert response.startswith(b"HTTP/1.1 400 "), (name, response[:200])


@pytest.mark.parametrize("parser", ["h11", "httptools"])
def test_text_lines_escape_every_client_value(greenserve, parser):
    server = greenserve(
        "--http", parser, "--log-level", "debug", "--access-logformat", FORMAT, "log_app:app", quiet=False
    )
    start = len(server.lines)
    _send_all(server)
    assert wait_until(lambda: _count(server, "rejected request: 400") >= len(REFUSED), 5), server.log
    lines = server.lines[start:]
    access = [line for line in lines if line.startswith("ACCESS ")]
    assert access == [EXPECTED_LINE], access
    # Every other line is an error log line: nothing a client sent started a line of its own.
    strays = [line for line in lines if not line.startswith(("ACCESS ", "["))]
    assert strays == [], strays
    assert all(line.isascii() for line in lines)


@pytest.mark.parametrize("parser", ["h11", "httptools"])
def test_json_lines_are_valid_and_round_trip(greenserve, parser):
    server = greenserve(
        "--http",
        parser,
        "--log-format",
        "json",
        "--log-level",
        "debug",
        "--access-logformat",
        FORMAT,
        "log_app:app",
        quiet=False,
    )
    start = len(server.lines)
    _send_all(server)
    assert wait_until(lambda: _count(server, "rejected request: 400") >= len(REFUSED), 5), server.log

    records = [json.loads(line) for line in server.lines]  # every line, the master's included
    access = [r for r in records[start:] if r["logger"] == "greenserve.access"]
    assert len(access) == 1, access  # one line per request the application answered
    (record,) = access
    assert record == {
        "time": record["time"],
        "level": "INFO",
        "logger": "greenserve.access",
        "pid": record["pid"],
        "worker": 1,
        "message": EXPECTED_LINE,
        "method": "GET",
        "path": '/p\nforged"q\\\x1b\u00e9\u00ff',  # UTF-8 decoded; the invalid 0xFF byte as latin-1
        "query": "q=%22x%22",
        "status": 200,
        "bytes": 2,
        "duration": record["duration"],
        "remote": "127.0.0.1",
        "request_id": None,
        "user_agent": 'a"b\\c \u00e9 \u00ff',
        "referer": BIG_REFERER.decode(),
        "protocol": "HTTP/1.1",
    }
    assert isinstance(record["duration"], float) and 0 <= record["duration"] < 5
    assert datetime.datetime.fromisoformat(record["time"]).tzinfo is not None
    assert record["pid"] != server.proc.pid  # written by the worker

    rejected = [r for r in records[start:] if "rejected request" in r["message"]]
    assert len(rejected) == len(REFUSED)
    assert all(r["level"] == "DEBUG" and r["worker"] == 1 for r in rejected)
    master = [r for r in records if r["pid"] == server.proc.pid]
    assert master and all(r["worker"] is None and r["logger"] == "greenserve.error" for r in master)


def test_json_error_log_has_the_traceback_and_hostile_messages_stay_one_line(greenserve):
    server = greenserve("--log-format", "json", "log_app:app")
    start = len(server.lines)
    with server.connect() as sock:
        assert raw_exchange(sock, request_bytes("GET", "/raise")).startswith(b"HTTP/1.1 500 ")
    with server.connect() as sock:
        assert raw_exchange(sock, request_bytes("GET", "/log?size=200000")).startswith(b"HTTP/1.1 200 ")
    assert wait_until(lambda: _count(server, "app says") == 1, 5), server.log[-2000:]

    records = [json.loads(line) for line in server.lines[start:]]
    (failure,) = [r for r in records if r["message"].startswith("error handling request")]
    assert failure["level"] == "ERROR"
    assert failure["message"] == "error handling request GET /raise"
    assert failure["exc_info"].startswith("Traceback (most recent call last):\n")
    assert failure["exc_info"].endswith('RuntimeError: boom "quoted"\nsecond line of the message')

    (said,) = [r for r in records if r["message"].startswith("app says")]
    assert len(said["message"]) >= 200000
    # Controls and quotes come back as they were; a lone surrogate becomes its escape text.
    assert said["message"].startswith('app says: x"\\\n\r\x1b\x00\u00e9\u2028\\udcffx"')
    assert "exc_info" not in said


def test_request_id_from_the_environ(greenserve):
    server = greenserve("--log-format", "json", "log_app:app", quiet=False)
    start = len(server.lines)
    with server.connect() as sock:
        raw_exchange(sock, request_bytes("GET", "/request-id?id=abc-123", headers={"Connection": "close"}))
    assert wait_until(lambda: _count(server, '"request_id":"abc-123"') == 1, 5), server.log
    (record,) = [json.loads(line) for line in server.lines[start:] if '"greenserve.access"' in line]
    assert record["request_id"] == "abc-123"
    assert record["user_agent"] is None and record["referer"] is None
    assert record["message"].startswith("127.0.0.1 - - [")
    assert '"GET /request-id?id=abc-123 HTTP/1.1" 200 2 "-" "-" ' in record["message"]
