"""The WSGI environ an application sees (PEP 3333), through a real server."""

from __future__ import annotations

import json

import pytest

from tests.conftest import read_until_close


@pytest.fixture(scope="module")
def server(module_greenserve):
    return module_greenserve("probe:app")


@pytest.fixture(scope="module")
def mounted(module_greenserve):
    return module_greenserve("--root-path", "/api", "probe:app")


def _environ(server, target: str, headers: dict[str, str] | None = None, version: str = "HTTP/1.1") -> dict:
    lines = [f"GET {target} {version}", "Host: testhost:1234", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    with server.connect() as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        reply, _ = read_until_close(sock)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), reply
    return json.loads(body)


def test_addresses(server):
    with server.connect() as sock:
        local_port = sock.getsockname()[1]
        sock.sendall(b"GET /environ HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        reply, _ = read_until_close(sock)
    environ = json.loads(reply.partition(b"\r\n\r\n")[2])
    assert environ["SERVER_NAME"] == "127.0.0.1"
    assert environ["SERVER_PORT"] == str(server.port)
    assert environ["REMOTE_ADDR"] == "127.0.0.1"
    assert environ["REMOTE_PORT"] == str(local_port)
    assert environ["HTTP_HOST"] == "h"


def test_wsgi_constants(server):
    environ = _environ(server, "/environ")
    assert environ["wsgi.version"] == [1, 0]
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.multithread"] is True
    assert environ["wsgi.run_once"] is False
    assert environ["wsgi.input_terminated"] is True
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["REQUEST_METHOD"] == "GET"
    assert environ["SCRIPT_NAME"] == ""
    assert environ["SERVER_SOFTWARE"].startswith("greenserve")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--single-process"], False),
        (["--workers", "1"], False),  # one worker: no other process runs the app
        (["--workers", "2"], True),
    ],
    ids=["single-process", "one-worker", "two-workers"],
)
def test_wsgi_multiprocess(module_greenserve, args, expected):
    server = module_greenserve(*args, "probe:app")
    assert _environ(server, "/environ")["wsgi.multiprocess"] is expected


def test_http10_protocol(server):
    assert _environ(server, "/environ", version="HTTP/1.0")["SERVER_PROTOCOL"] == "HTTP/1.0"


def test_path_query_and_raw_uri(server):
    environ = _environ(server, "/environ?a=1&b=%20x&c")
    assert environ["PATH_INFO"] == "/environ"
    assert environ["QUERY_STRING"] == "a=1&b=%20x&c"
    assert environ["RAW_URI"] == "/environ?a=1&b=%20x&c"


def test_path_info_percent_decoded_as_latin1(module_greenserve):
    server = module_greenserve("environ_echo:app")
    environ = _environ(server, "/caf%C3%A9/a%2Fb%20c?q=%C3%A9")
    assert environ["PATH_INFO"] == "/caf\u00c3\u00a9/a/b c"
    assert environ["PATH_INFO"].encode("latin-1").decode("utf-8") == "/caf\u00e9/a/b c"
    assert environ["QUERY_STRING"] == "q=%C3%A9"
    assert environ["RAW_URI"] == "/caf%C3%A9/a%2Fb%20c?q=%C3%A9"


def test_root_path_sets_script_name(mounted):
    environ = _environ(mounted, "/api/environ?x=1")
    assert environ["SCRIPT_NAME"] == "/api"
    assert environ["PATH_INFO"] == "/environ"
    assert environ["RAW_URI"] == "/api/environ?x=1"


def test_root_path_only_strips_a_whole_segment(module_greenserve):
    server = module_greenserve("--root-path", "/api", "environ_echo:app")
    environ = _environ(server, "/apiary")
    assert environ["SCRIPT_NAME"] == "/api"
    assert environ["PATH_INFO"] == "/apiary"
    environ = _environ(server, "/api")
    assert environ["PATH_INFO"] == ""


def test_content_headers(server):
    environ = _environ(server, "/environ", {"Content-Type": "text/x-test", "X-Custom-Header": "v"})
    assert environ["CONTENT_TYPE"] == "text/x-test"
    assert "HTTP_CONTENT_TYPE" not in environ
    assert environ["HTTP_X_CUSTOM_HEADER"] == "v"


def test_proxy_headers_trusted_from_localhost(server):
    environ = _environ(
        server, "/environ", {"X-Forwarded-For": "203.0.113.9, 127.0.0.1", "X-Forwarded-Proto": "https"}
    )
    assert environ["REMOTE_ADDR"] == "203.0.113.9"
    assert environ["wsgi.url_scheme"] == "https"


def test_forwarded_header_trusted_from_localhost(server):
    environ = _environ(server, "/environ", {"Forwarded": 'for="[2001:db8::1]:4711";proto=https'})
    assert environ["REMOTE_ADDR"] == "2001:db8::1"
    assert environ["wsgi.url_scheme"] == "https"


def test_proxy_headers_ignored_from_untrusted_peer(module_greenserve):
    server = module_greenserve("--forwarded-allow-ips", "10.0.0.1", "probe:app")
    environ = _environ(server, "/environ", {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"})
    assert environ["REMOTE_ADDR"] == "127.0.0.1"
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["HTTP_X_FORWARDED_FOR"] == "203.0.113.9"  # still visible as a plain header


def test_no_proxy_headers(module_greenserve):
    server = module_greenserve("--no-proxy-headers", "probe:app")
    environ = _environ(server, "/environ", {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"})
    assert environ["REMOTE_ADDR"] == "127.0.0.1"
    assert environ["wsgi.url_scheme"] == "http"


def test_forwarded_allow_ips_wildcard(module_greenserve):
    server = module_greenserve("--forwarded-allow-ips", "*", "probe:app")
    environ = _environ(server, "/environ", {"X-Forwarded-For": "198.51.100.7"})
    assert environ["REMOTE_ADDR"] == "198.51.100.7"
