"""Unit tests for greenserve.protocol.environ: request head -> WSGI environ (PEP 3333)."""

from __future__ import annotations

from typing import Any

import pytest

from greenserve.protocol.environ import base_environ, header_key, request_environ, split_target
from greenserve.protocol.events import Request


def make_request(
    target: bytes = b"/",
    headers: list[tuple[bytes, bytes]] | None = None,
    method: str = "GET",
    version: str = "1.1",
) -> Request:
    return Request(
        method, target, version, headers or [(b"Host", b"example.com")], True, None, False, False, None
    )


def make_base(root_path: str = "", **extra: Any) -> dict[str, Any]:
    return base_environ(
        server_name="127.0.0.1",
        server_port="8000",
        remote_addr="10.0.0.1",
        remote_port="54321",
        url_scheme="http",
        root_path=root_path,
        server_software="greenserve/test",
        multiprocess=True,
        extra=extra or None,
    )


def environ_for(target: bytes = b"/", headers=None, root_path: str = "", **kwargs) -> dict[str, Any]:
    return request_environ(make_base(root_path), make_request(target, headers, **kwargs), root_path)


# -- header_key ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "key"),
    [
        (b"Host", "HTTP_HOST"),
        (b"X-Forwarded-For", "HTTP_X_FORWARDED_FOR"),
        (b"x-forwarded-for", "HTTP_X_FORWARDED_FOR"),
        (b"Accept", "HTTP_ACCEPT"),
        (b"Content-Type", "CONTENT_TYPE"),
        (b"content-type", "CONTENT_TYPE"),
        (b"Content-Length", "CONTENT_LENGTH"),
        (b"CONTENT-LENGTH", "CONTENT_LENGTH"),
        (b"Content-Encoding", "HTTP_CONTENT_ENCODING"),
        (b"X-a1!#$", "HTTP_X_A1!#$"),
    ],
)
def test_header_key(name: bytes, key: str) -> None:
    assert header_key(name) == key
    assert header_key(name) == key  # cached


@pytest.mark.parametrize("name", [b"X_Forwarded_For", b"Content_Type", b"_", b"x-a_b"])
def test_header_key_drops_underscore_names(name: bytes) -> None:
    assert header_key(name) == ""


def test_underscore_header_cannot_spoof_its_dash_twin() -> None:
    environ = environ_for(headers=[(b"Host", b"a"), (b"X_Forwarded_For", b"6.6.6.6"), (b"X-Real", b"1")])
    assert "HTTP_X_FORWARDED_FOR" not in environ
    assert environ["HTTP_X_REAL"] == "1"
    environ = environ_for(
        headers=[(b"Host", b"a"), (b"X-Forwarded-For", b"1.2.3.4"), (b"X_Forwarded_For", b"6")]
    )
    assert environ["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"


# -- split_target --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        (b"/", b"/", b""),
        (b"/a/b", b"/a/b", b""),
        (b"/a?b=1&c=2", b"/a", b"b=1&c=2"),
        (b"/a?", b"/a", b""),
        (b"/a?b?c", b"/a", b"b?c"),
        (b"/a?b=1#frag", b"/a", b"b=1"),
        (b"/a#frag", b"/a", b""),
        (b"/a#frag?x=1", b"/a", b""),
        (b"//double//slash", b"//double//slash", b""),
        (b"/%2F%20?q=%20", b"/%2F%20", b"q=%20"),
        (b"*", b"*", b""),
        (b"http://example.com", b"/", b""),
        (b"http://example.com/", b"/", b""),
        (b"http://example.com/p/q?x=1", b"/p/q", b"x=1"),
        (b"https://example.com:8443/p", b"/p", b""),
        (b"http://example.com?x=1", b"/", b"x=1"),
        (b"http://example.com?x=/y", b"/", b"x=/y"),
        (b"HTTP://EXAMPLE.COM/P?Q", b"/P", b"Q"),
        (b"http://user@example.com/p", b"/p", b""),
        (b"http://example.com/p#f", b"/p", b""),
        (b"http://example.com#f/x", b"/", b""),
    ],
)
def test_split_target(target: bytes, path: bytes, query: bytes) -> None:
    assert split_target(target) == (path, query)


# -- base_environ ----------------------------------------------------------------------


def test_base_environ() -> None:
    base = make_base("/api", custom="x")
    assert base["SERVER_NAME"] == "127.0.0.1"
    assert base["SERVER_PORT"] == "8000"
    assert base["REMOTE_ADDR"] == "10.0.0.1"
    assert base["REMOTE_PORT"] == "54321"
    assert base["SCRIPT_NAME"] == "/api"
    assert base["SERVER_SOFTWARE"] == "greenserve/test"
    assert base["wsgi.version"] == (1, 0)
    assert base["wsgi.url_scheme"] == "http"
    assert base["wsgi.multithread"] is True
    assert base["wsgi.multiprocess"] is True
    assert base["wsgi.run_once"] is False
    assert base["wsgi.input_terminated"] is True
    assert base["custom"] == "x"
    for key, value in base.items():
        if key.isupper():
            assert type(value) is str, key  # PEP 3333: CGI variables are native strings


# -- request_environ ---------------------------------------------------------------------


def test_request_environ_basics() -> None:
    base = make_base()
    environ = request_environ(base, make_request(b"/path?a=1", method="POST"), "")
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["PATH_INFO"] == "/path"
    assert environ["QUERY_STRING"] == "a=1"
    assert environ["RAW_URI"] == environ["REQUEST_URI"] == "/path?a=1"
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["SCRIPT_NAME"] == ""
    assert environ["HTTP_HOST"] == "example.com"
    assert "REQUEST_METHOD" not in base  # the base is copied, not changed
    assert "CONTENT_TYPE" not in environ and "CONTENT_LENGTH" not in environ


def test_http10_protocol() -> None:
    assert environ_for(version="1.0")["SERVER_PROTOCOL"] == "HTTP/1.0"


def test_path_info_is_percent_decoded_as_latin1() -> None:
    environ = environ_for(b"/caf%C3%A9/a%20b%2Fc?q=caf%C3%A9+x")
    # PEP 3333: bytes decoded as latin-1; the application re-encodes to get UTF-8.
    assert environ["PATH_INFO"] == "/caf\u00c3\u00a9/a b/c"
    assert environ["PATH_INFO"].encode("latin-1").decode("utf-8") == "/caf\u00e9/a b/c"
    assert environ["QUERY_STRING"] == "q=caf%C3%A9+x"  # raw
    assert environ["RAW_URI"] == "/caf%C3%A9/a%20b%2Fc?q=caf%C3%A9+x"


def test_path_info_invalid_percent_escapes_are_kept() -> None:
    assert environ_for(b"/a%zz%4")["PATH_INFO"] == "/a%zz%4"


def test_path_info_of_absolute_form_and_asterisk() -> None:
    environ = environ_for(b"http://example.com/x%20y?z=1")
    assert environ["PATH_INFO"] == "/x y"
    assert environ["QUERY_STRING"] == "z=1"
    assert environ["RAW_URI"] == "http://example.com/x%20y?z=1"


@pytest.mark.parametrize("root_path", ["", "/api"])
def test_asterisk_form_has_an_empty_path_info(root_path: str) -> None:
    """OPTIONS * names no resource: PATH_INFO is empty (CGI/PEP 3333), the raw URI says '*'."""
    environ = environ_for(b"*", method="OPTIONS", root_path=root_path)
    assert environ["PATH_INFO"] == ""
    assert environ["SCRIPT_NAME"] == root_path
    assert environ["QUERY_STRING"] == ""
    assert environ["RAW_URI"] == environ["REQUEST_URI"] == "*"


def test_fragment_is_not_in_path_or_query() -> None:
    environ = environ_for(b"/a#frag")
    assert environ["PATH_INFO"] == "/a"
    assert environ["QUERY_STRING"] == ""


@pytest.mark.parametrize(
    ("target", "script_name", "path_info"),
    [
        (b"/api/users", "/api", "/users"),
        (b"/api", "/api", ""),
        (b"/api/", "/api", "/"),
        (b"/api?x=1", "/api", ""),
        (b"/apiary", "/api", "/apiary"),
        (b"/other/api/x", "/api", "/other/api/x"),
    ],
)
def test_root_path(target: bytes, script_name: str, path_info: str) -> None:
    environ = environ_for(target, root_path="/api")
    assert environ["SCRIPT_NAME"] == script_name
    assert environ["PATH_INFO"] == path_info


def test_content_type_and_length() -> None:
    environ = environ_for(
        headers=[(b"Host", b"a"), (b"Content-Type", b"application/json"), (b"Content-Length", b"12")]
    )
    assert environ["CONTENT_TYPE"] == "application/json"
    assert environ["CONTENT_LENGTH"] == "12"
    assert "HTTP_CONTENT_TYPE" not in environ and "HTTP_CONTENT_LENGTH" not in environ


def test_repeated_headers_are_joined() -> None:
    environ = environ_for(
        headers=[
            (b"Host", b"a"),
            (b"Accept", b"text/html"),
            (b"X-Multi", b"1"),
            (b"accept", b"application/json"),
            (b"x-multi", b"2"),
            (b"X-MULTI", b"3"),
            (b"Cookie", b"a=1"),
            (b"cookie", b"b=2"),
        ]
    )
    assert environ["HTTP_ACCEPT"] == "text/html, application/json"
    assert environ["HTTP_X_MULTI"] == "1, 2, 3"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"


def test_header_values_are_latin1_strings() -> None:
    environ = environ_for(headers=[(b"Host", b"a"), (b"X-Name", b"caf\xc3\xa9 \xff")])
    assert environ["HTTP_X_NAME"] == "caf\u00c3\u00a9 \u00ff"
    assert environ["HTTP_X_NAME"].encode("latin-1") == b"caf\xc3\xa9 \xff"


def test_every_cgi_value_is_str() -> None:
    environ = environ_for(
        b"/x?y", headers=[(b"Host", b"a"), (b"Content-Length", b"1"), (b"X-A", b"b")], root_path="/x"
    )
    for key, value in environ.items():
        if key.isupper():
            assert type(value) is str, key
