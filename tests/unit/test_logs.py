"""greenserve.logs and the access log atoms in this process: escaping what clients send."""

from __future__ import annotations

import base64

import pytest

from greenserve import logs

# -- escape ----------------------------------------------------------------------------


def test_escape_keeps_printable_ascii_as_it_is():
    value = "GET /a?b=1 HTTP/1.1 curl/8.5.0 ~!@#$%^&*()_+{}|:<>?[];',./`"
    assert logs.escape(value) is value


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ('a"\nb', "a\\x22\\x0Ab"),
        ("a\rb\x00c\x1b[31m", "a\\x0Db\\x00c\\x1B[31m"),
        ("tab\tdel\x7f", "tab\\x09del\\x7F"),
        ("back\\slash", "back\\\\slash"),
        ("caf\u00c3\u00a9 \u00ff", "caf\\xC3\\xA9 \\xFF"),  # latin-1 code points = the raw bytes
        ("\u0085 next line", "\\x85 next line"),  # a line break for str.splitlines() and some viewers
        ("\u2028\u20ac", "\\xE2\\x80\\xA8\\xE2\\x82\\xAC"),  # beyond latin-1: its UTF-8 bytes
        ("\udcff", "\\xED\\xB3\\xBF"),
    ],
)
def test_escape_like_nginx(value, escaped):
    assert logs.escape(value) == escaped
    assert logs.escape(value).isascii() and logs.escape(value).isprintable()


def test_request_summary_escapes_and_bounds_the_target():
    assert logs.request_summary("GET", b'/a\nb"c') == "GET /a\\x0Ab\\x22c"
    assert logs.request_summary("GET", b"/" + b"x" * 5000) == "GET /" + "x" * 199


# -- access log atoms ------------------------------------------------------------------


class _Response:
    """What the access log reads from a response."""

    def __init__(self, headers, status=200, body_bytes=5):
        self.head = type("Head", (), {"headers": headers})()
        self.status = status
        self.body_bytes = body_bytes


def _environ(**extra):
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/a%0Ab?x=%22",
        "PATH_INFO": "/a\nb",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "x=%22",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.1",
    }
    environ.update(extra)
    return environ


def test_every_client_atom_is_escaped():
    from greenserve.worker.accesslog import AccessLog

    fmt = "%(u)s|%(U)s|%(a)s|%(f)s|%({x-h}i)s|%({x-o}o)s|%({x-b}o)s|%({my.key}e)s|%(s)s %(b)s"
    environ = _environ(
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"a\nb:pw").decode(),
        HTTP_USER_AGENT='ua"\x1b',
        HTTP_REFERER="\\",
        HTTP_X_H="\r",
        **{"my.key": "\u2028"},
    )
    response = _Response([("X-O", 'o"'), (b"x-b", b"\xff")])  # WSGI str, then ASGI bytes headers
    line = AccessLog(fmt).format(environ, response, 0.5)
    assert line == "a\\x0Ab|/a\\x0Ab|ua\\x22\\x1B|\\\\|\\x0D|o\\x22|\\xFF|\\xE2\\x80\\xA8|200 5"


def test_remote_user_set_by_the_application_is_escaped_too():
    from greenserve.worker.accesslog import AccessLog

    assert AccessLog("%(u)s").format(_environ(REMOTE_USER="x\ny"), _Response([]), 0) == "x\\x0Ay"
