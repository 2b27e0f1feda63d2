"""Unit tests for greenserve.protocol.proxy: trusted Forwarded / X-Forwarded-* handling, WSGI and ASGI."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenserve.protocol.proxy import ProxyPolicy, apply_proxy_headers, apply_proxy_to_scope, parse_allow_list


def env(**headers: str) -> dict[str, Any]:
    environ: dict[str, Any] = {"REMOTE_ADDR": "10.0.0.2", "REMOTE_PORT": "40000", "wsgi.url_scheme": "http"}
    environ.update(headers)
    return environ


# -- ProxyPolicy -----------------------------------------------------------------------


def test_literals() -> None:
    policy = ProxyPolicy(["127.0.0.1", "::1", " 10.0.0.2 "])
    assert policy.trusts("127.0.0.1")
    assert policy.trusts("::1")
    assert policy.trusts("10.0.0.2")
    assert not policy.trusts("10.0.0.3")
    assert not policy.trusts("127.0.0.2")
    assert not policy.trusts("not an ip")
    assert not policy.trusts("")


def test_ipv6_literals_are_normalised() -> None:
    policy = ProxyPolicy(["0:0:0:0:0:0:0:1", "2001:DB8::0001"])
    assert policy.trusts("::1")
    assert policy.trusts("2001:db8::1")


def test_networks() -> None:
    policy = ProxyPolicy(["10.0.0.0/8", "192.168.1.0/24", "fd00::/8", "172.16.5.4/16"])
    assert policy.trusts("10.1.2.3")
    assert policy.trusts("192.168.1.200")
    assert not policy.trusts("192.168.2.1")
    assert policy.trusts("fd12:3456::1")
    assert not policy.trusts("fe80::1")
    assert policy.trusts("172.16.200.1")  # host bits are allowed (strict=False)
    assert not policy.trusts("11.0.0.1")
    assert not policy.trusts("garbage")
    assert not policy.trusts("unknown")


def test_wildcard() -> None:
    policy = ProxyPolicy(["*"])
    assert policy.trusts("1.2.3.4")
    assert policy.trusts("::1")
    assert policy.trusts("anything")


def test_unix_peers_are_always_trusted() -> None:
    assert ProxyPolicy([]).trusts(None)
    assert ProxyPolicy(["10.0.0.1"]).trusts(None)


def test_empty_policy() -> None:
    policy = ProxyPolicy(["", " "])
    assert not policy.trusts("127.0.0.1")


@pytest.mark.parametrize("item", ["not-an-ip", "10.0.0.0/33", "300.1.1.1", "10.0.0.1/abc"])
def test_invalid_entries(item: str) -> None:
    with pytest.raises(ValueError):
        ProxyPolicy([item])


# -- X-Forwarded-For / X-Forwarded-Proto ------------------------------------------------


def test_no_forwarded_headers_changes_nothing() -> None:
    environ = env()
    apply_proxy_headers(environ, ProxyPolicy(["*"]))
    assert environ == env()


def test_single_hop() -> None:
    environ = env(HTTP_X_FORWARDED_FOR="203.0.113.7", HTTP_X_FORWARDED_PROTO="https")
    apply_proxy_headers(environ, ProxyPolicy(["10.0.0.2"]))
    assert environ["REMOTE_ADDR"] == "203.0.113.7"
    assert environ["REMOTE_PORT"] == "0"
    assert environ["wsgi.url_scheme"] == "https"


def test_chain_skips_trusted_hops_from_the_right() -> None:
    policy = ProxyPolicy(["10.0.0.0/8"])
    environ = env(HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7, 10.0.0.5, 10.0.0.9")
    apply_proxy_headers(environ, policy)
    # 6.6.6.6 may be forged by the client: the right-most untrusted hop is the client.
    assert environ["REMOTE_ADDR"] == "203.0.113.7"


def test_chain_of_only_trusted_hops_uses_the_first() -> None:
    environ = env(HTTP_X_FORWARDED_FOR="10.0.0.7 ,10.0.0.8")
    apply_proxy_headers(environ, ProxyPolicy(["10.0.0.0/8"]))
    assert environ["REMOTE_ADDR"] == "10.0.0.7"


def test_empty_chain_changes_nothing() -> None:
    environ = env(HTTP_X_FORWARDED_FOR=" , ")
    apply_proxy_headers(environ, ProxyPolicy(["*"]))
    assert environ["REMOTE_ADDR"] == "10.0.0.2"
    assert environ["REMOTE_PORT"] == "40000"


def test_ipv6_in_x_forwarded_for() -> None:
    environ = env(HTTP_X_FORWARDED_FOR="2001:db8::7")
    apply_proxy_headers(environ, ProxyPolicy(["10.0.0.2"]))
    assert environ["REMOTE_ADDR"] == "2001:db8::7"


@pytest.mark.parametrize(
    ("value", "scheme"),
    [("https", "https"), ("HTTPS", "https"), (" http ", "http"), ("http, https", "https"), ("ftp", "http")],
)
def test_x_forwarded_proto(value: str, scheme: str) -> None:
    environ = env(HTTP_X_FORWARDED_PROTO=value)
    apply_proxy_headers(environ, ProxyPolicy(["*"]))
    assert environ["wsgi.url_scheme"] == scheme
    assert environ["REMOTE_ADDR"] == "10.0.0.2"


def test_x_forwarded_headers_win_over_forwarded() -> None:
    environ = env(HTTP_X_FORWARDED_FOR="203.0.113.7", HTTP_FORWARDED="for=198.51.100.1;proto=https")
    apply_proxy_headers(environ, ProxyPolicy(["*"]))
    assert environ["REMOTE_ADDR"] == "203.0.113.7"
    assert environ["wsgi.url_scheme"] == "http"


# -- RFC 7239 Forwarded ------------------------------------------------------------------


def test_forwarded_simple() -> None:
    environ = env(HTTP_FORWARDED="for=192.0.2.60;proto=https;by=203.0.113.43")
    apply_proxy_headers(environ, ProxyPolicy(["10.0.0.2"]))
    assert environ["REMOTE_ADDR"] == "192.0.2.60"
    assert environ["REMOTE_PORT"] == "0"
    assert environ["wsgi.url_scheme"] == "https"


def test_forwarded_case_and_spaces() -> None:
    environ = env(HTTP_FORWARDED="For=192.0.2.60 ; Proto=HTTPS")
    apply_proxy_headers(environ, ProxyPolicy(["*"]))
    assert environ["REMOTE_ADDR"] == "192.0.2.60"
    assert environ["wsgi.url_scheme"] == "https"


def test_forwarded_quoted_ipv6_with_port() -> None:
    environ = env(HTTP_FORWARDED='for="[2001:db8:cafe::17]:4711"')
    apply_proxy_headers(environ, ProxyPolicy(["*"]))
    assert environ["REMOTE_ADDR"] == "2001:db8:cafe::17"


def test_forwarded_quoted_ipv6_without_port() -> None:
    environ = env(HTTP_FORWARDED='for="[2001:db8::1]"')
    apply_proxy_headers(environ, ProxyPolicy(["*"]))
    assert environ["REMOTE_ADDR"] == "2001:db8::1"


def test_forwarded_ipv4_with_port() -> None:
    environ = env(HTTP_FORWARDED='for="192.0.2.43:8080"')
    apply_proxy_headers(environ, ProxyPolicy(["*"]))
    assert environ["REMOTE_ADDR"] == "192.0.2.43"


def test_forwarded_chain_skips_trusted_hops() -> None:
    environ = env(HTTP_FORWARDED='for=6.6.6.6, for=192.0.2.43, for="[fd00::1]";proto=https, for=10.0.0.3')
    apply_proxy_headers(environ, ProxyPolicy(["10.0.0.0/8", "fd00::/8"]))
    assert environ["REMOTE_ADDR"] == "192.0.2.43"
    assert environ["wsgi.url_scheme"] == "https"


def test_forwarded_without_for() -> None:
    environ = env(HTTP_FORWARDED="proto=https;host=example.com")
    apply_proxy_headers(environ, ProxyPolicy(["*"]))
    assert environ["REMOTE_ADDR"] == "10.0.0.2"
    assert environ["wsgi.url_scheme"] == "https"


def test_forwarded_unknown_proto_is_ignored() -> None:
    environ = env(HTTP_FORWARDED="for=192.0.2.1;proto=gopher")
    apply_proxy_headers(environ, ProxyPolicy(["*"]))
    assert environ["wsgi.url_scheme"] == "http"


# -- allow lists -------------------------------------------------------------------------


def test_parse_allow_list_strips_and_keeps_order() -> None:
    assert parse_allow_list([" 10.0.0.1", "", "fd00::/8 ", "*"]) == ("10.0.0.1", "fd00::/8", "*")


@pytest.mark.parametrize(
    "item", ["10.0.0.0/33", "10.0.0.1/abc", "localhost", "300.1.1.1", "fe80::1/129", "10.0.0.*"]
)
def test_parse_allow_list_names_the_bad_entry(item: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(item)) + " is not an IP address, a network"):
        parse_allow_list(["127.0.0.1", item])


def test_unix_peers_can_be_distrusted() -> None:
    assert not ProxyPolicy(["127.0.0.1"], trust_unix=False).trusts(None)
    assert not ProxyPolicy(["*"], trust_unix=False).trusts(None)  # '*' is every address; a Unix peer has none
    assert ProxyPolicy(["*"], trust_unix=False).trusts("192.0.2.1")


# -- X-Forwarded-Host / -Port / -Prefix (WSGI) ---------------------------------------------

ALL = ProxyPolicy(["*"], forwarded_host=True, forwarded_port=True, forwarded_prefix=True)


def host_env(**headers: str) -> dict[str, Any]:
    environ = env(HTTP_HOST="10.0.0.1:8000", SERVER_NAME="10.0.0.1", SERVER_PORT="8000", SCRIPT_NAME="")
    environ.update(headers)
    return environ


def test_host_port_and_prefix_are_off_by_default() -> None:
    environ = host_env(
        HTTP_X_FORWARDED_HOST="evil.example", HTTP_X_FORWARDED_PORT="444", HTTP_X_FORWARDED_PREFIX="/evil"
    )
    apply_proxy_headers(environ, ProxyPolicy(["*"]))
    assert environ == host_env(
        HTTP_X_FORWARDED_HOST="evil.example", HTTP_X_FORWARDED_PORT="444", HTTP_X_FORWARDED_PREFIX="/evil"
    )


@pytest.mark.parametrize(
    ("value", "proto", "http_host", "server_name", "server_port"),
    [
        ("example.com", None, "example.com", "example.com", "80"),
        ("example.com", "https", "example.com", "example.com", "443"),
        ("example.com:8443", "https", "example.com:8443", "example.com", "8443"),
        ("Example.COM:80", None, "Example.COM:80", "Example.COM", "80"),
        ("192.0.2.1:8080", None, "192.0.2.1:8080", "192.0.2.1", "8080"),
        ("[2001:db8::1]", None, "[2001:db8::1]", "2001:db8::1", "80"),
        ("[2001:db8::1]:8443", "https", "[2001:db8::1]:8443", "2001:db8::1", "8443"),
        ("client.example, proxy.example:81", None, "proxy.example:81", "proxy.example", "81"),
        ("my_host.internal", None, "my_host.internal", "my_host.internal", "80"),
    ],
)
def test_x_forwarded_host(
    value: str, proto: str | None, http_host: str, server_name: str, server_port: str
) -> None:
    environ = host_env(HTTP_X_FORWARDED_HOST=value)
    if proto:
        environ["HTTP_X_FORWARDED_PROTO"] = proto
    apply_proxy_headers(environ, ProxyPolicy(["*"], forwarded_host=True))
    assert (environ["HTTP_HOST"], environ["SERVER_NAME"], environ["SERVER_PORT"]) == (
        http_host,
        server_name,
        server_port,
    )


INVALID_HOSTS = [
    "example.com\r\nX-Evil: 1",
    "example.com\n",
    "exa mple.com",
    "user@example.com",
    "example.com/path",
    "example.com:0",
    "example.com:65536",
    "example.com:080",
    "example.com:",
    "example.com:http",
    ":8080",
    "[::1",
    "[zz::1]:80",
    "[fe80::1%eth0]",
    "2001:db8::1",
    "-example.com",
    ".example.com",
    "a" * 300,
    "bücher.example",
    "",
    " , ",
]


@pytest.mark.parametrize("value", INVALID_HOSTS)
def test_invalid_x_forwarded_host_is_ignored(value: str) -> None:
    environ = host_env(HTTP_X_FORWARDED_HOST=value)
    apply_proxy_headers(environ, ALL)
    assert (environ["HTTP_HOST"], environ["SERVER_NAME"], environ["SERVER_PORT"]) == (
        "10.0.0.1:8000",
        "10.0.0.1",
        "8000",
    )


def test_forwarded_host_from_the_last_element() -> None:
    policy = ProxyPolicy(["*"], forwarded_host=True)
    environ = host_env(HTTP_FORWARDED='for=192.0.2.1;host="shop.example:8443";proto=https')
    apply_proxy_headers(environ, policy)
    assert (environ["HTTP_HOST"], environ["SERVER_NAME"], environ["SERVER_PORT"]) == (
        "shop.example:8443",
        "shop.example",
        "8443",
    )
    # A host= the client put in an earlier element does not count.
    environ = host_env(HTTP_FORWARDED="host=evil.example, for=192.0.2.1")
    apply_proxy_headers(environ, policy)
    assert environ["HTTP_HOST"] == "10.0.0.1:8000"
    # X-Forwarded-Host wins over Forwarded, as X-Forwarded-For/-Proto do.
    environ = host_env(HTTP_FORWARDED="host=a.example", HTTP_X_FORWARDED_HOST="b.example")
    apply_proxy_headers(environ, policy)
    assert environ["HTTP_HOST"] == "b.example"


@pytest.mark.parametrize(
    ("http_host", "value", "proto", "expected_host", "expected_port"),
    [
        ("example.com", "8443", None, "example.com:8443", "8443"),
        ("example.com:8000", "8443", None, "example.com:8443", "8443"),
        ("example.com:8000", "443", "https", "example.com", "443"),
        ("example.com:8000", "80", None, "example.com", "80"),
        ("example.com:8000", "443", None, "example.com:443", "443"),
        ("[2001:db8::1]", "8443", None, "[2001:db8::1]:8443", "8443"),
        ("[2001:db8::1]:8000", "8443", None, "[2001:db8::1]:8443", "8443"),
        ("example.com", "81, 8443", None, "example.com:8443", "8443"),
    ],
)
def test_x_forwarded_port(
    http_host: str, value: str, proto: str | None, expected_host: str, expected_port: str
) -> None:
    environ = host_env(HTTP_HOST=http_host, HTTP_X_FORWARDED_PORT=value)
    if proto:
        environ["HTTP_X_FORWARDED_PROTO"] = proto
    apply_proxy_headers(environ, ProxyPolicy(["*"], forwarded_port=True))
    assert (environ["HTTP_HOST"], environ["SERVER_PORT"]) == (expected_host, expected_port)
    assert environ["SERVER_NAME"] == "10.0.0.1"


def test_x_forwarded_port_without_a_host_header() -> None:
    environ = host_env(HTTP_X_FORWARDED_PORT="8443")
    del environ["HTTP_HOST"]
    apply_proxy_headers(environ, ALL)
    assert environ["SERVER_PORT"] == "8443"
    assert "HTTP_HOST" not in environ


def test_x_forwarded_port_overrides_the_port_of_x_forwarded_host() -> None:
    environ = host_env(HTTP_X_FORWARDED_HOST="example.com:8080", HTTP_X_FORWARDED_PORT="9090")
    apply_proxy_headers(environ, ALL)
    assert (environ["HTTP_HOST"], environ["SERVER_NAME"], environ["SERVER_PORT"]) == (
        "example.com:9090",
        "example.com",
        "9090",
    )


@pytest.mark.parametrize("value", ["0", "65536", "080", "-1", "+80", "http", "", "8080\r\n", "1e3", "٨٠"])
def test_invalid_x_forwarded_port_is_ignored(value: str) -> None:
    environ = host_env(HTTP_X_FORWARDED_PORT=value)
    apply_proxy_headers(environ, ALL)
    assert (environ["HTTP_HOST"], environ["SERVER_PORT"]) == ("10.0.0.1:8000", "8000")


@pytest.mark.parametrize(
    ("value", "root", "script_name"),
    [
        ("/app", "", "/app"),
        ("/app/", "", "/app"),
        ("/app//", "", "/app"),
        ("/a/b", "", "/a/b"),
        ("/app", "/api", "/app/api"),
        ("/", "", ""),
        ("/", "/api", "/api"),
        ("/my%20app", "", "/my app"),
        ("/caf%C3%A9", "", "/caf\xc3\xa9"),  # WSGI: the bytes as latin-1, as PATH_INFO
        ("/first, /second", "", "/second"),
        ("/v1;x=1/a~b", "", "/v1;x=1/a~b"),
    ],
)
def test_x_forwarded_prefix(value: str, root: str, script_name: str) -> None:
    environ = host_env(HTTP_X_FORWARDED_PREFIX=value, SCRIPT_NAME=root, PATH_INFO="/items/3")
    apply_proxy_headers(environ, ProxyPolicy(["*"], forwarded_prefix=True))
    assert environ["SCRIPT_NAME"] == script_name
    assert environ["PATH_INFO"] == "/items/3"  # the proxy already removed the prefix, as ProxyFix assumes


INVALID_PREFIXES = [
    "app",
    "",
    "//evil.example",
    "/%2Fevil.example",
    "/a/../b",
    "/a/./b",
    "/..",
    "/a/%2e%2e/b",
    "/a?x=1",
    "/a%3Fx",
    "/a#x",
    "/a%23x",
    "/a\\b",
    "/a%5Cb",
    "/a b",
    "/a%0d%0aX-Evil: 1",
    "/a\r\n",
    "/a%00",
    "/a%",
    "/a%zz",
    "/caf\xe9",
    "http://evil.example/app",
]


@pytest.mark.parametrize("value", INVALID_PREFIXES)
def test_invalid_x_forwarded_prefix_is_ignored(value: str) -> None:
    environ = host_env(HTTP_X_FORWARDED_PREFIX=value, SCRIPT_NAME="/api", PATH_INFO="/x")
    apply_proxy_headers(environ, ALL)
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/api", "/x")


def test_each_header_has_its_own_switch() -> None:
    headers = {
        "HTTP_X_FORWARDED_HOST": "example.com",
        "HTTP_X_FORWARDED_PORT": "8443",
        "HTTP_X_FORWARDED_PREFIX": "/app",
    }
    environ = host_env(**headers)
    apply_proxy_headers(environ, ProxyPolicy(["*"], forwarded_prefix=True))
    assert (environ["HTTP_HOST"], environ["SERVER_PORT"], environ["SCRIPT_NAME"]) == (
        "10.0.0.1:8000",
        "8000",
        "/app",
    )
    environ = host_env(**headers)
    apply_proxy_headers(environ, ProxyPolicy(["*"], forwarded_host=True))
    assert (environ["HTTP_HOST"], environ["SERVER_PORT"], environ["SCRIPT_NAME"]) == ("example.com", "80", "")


def test_host_port_and_prefix_alone_still_apply_for_and_proto_rules() -> None:
    environ = host_env(HTTP_X_FORWARDED_HOST="example.com")
    apply_proxy_headers(environ, ALL)
    assert environ["REMOTE_ADDR"] == "10.0.0.2"
    assert environ["REMOTE_PORT"] == "40000"
    assert environ["wsgi.url_scheme"] == "http"


# -- ASGI scopes ---------------------------------------------------------------------------


def make_scope(*headers: tuple[bytes, bytes], kind: str = "http", root_path: str = "") -> dict[str, Any]:
    return {
        "type": kind,
        "scheme": "ws" if kind == "websocket" else "http",
        "path": root_path + "/items/3",
        "raw_path": root_path.encode() + b"/items/3",
        "root_path": root_path,
        "headers": [(b"host", b"10.0.0.1:8000"), *headers, (b"accept", b"*/*")],
        "client": ("10.0.0.2", 40000),
        "server": ("10.0.0.1", 8000),
    }


def test_scope_without_forwarded_headers_is_untouched() -> None:
    scope = make_scope()
    headers = scope["headers"]
    apply_proxy_to_scope(scope, ALL)
    assert scope == make_scope()
    assert scope["headers"] is headers


def test_scope_client_and_scheme() -> None:
    policy = ProxyPolicy(["10.0.0.0/8"])
    scope = make_scope(
        (b"x-forwarded-for", b"6.6.6.6, 203.0.113.7"),
        (b"x-forwarded-for", b"10.0.0.5"),
        (b"x-forwarded-proto", b"https"),
    )
    apply_proxy_to_scope(scope, policy)
    assert scope["client"] == ("203.0.113.7", 0)
    assert scope["scheme"] == "https"


def test_scope_forwarded_header() -> None:
    scope = make_scope((b"forwarded", b'for="[2001:db8:cafe::17]:4711";proto=https;host=shop.example'))
    apply_proxy_to_scope(scope, ALL)
    assert scope["client"] == ("2001:db8:cafe::17", 0)
    assert scope["scheme"] == "https"
    assert scope["server"] == ("shop.example", 443)
    assert (b"host", b"shop.example") in scope["headers"]


def test_websocket_scope_scheme() -> None:
    scope = make_scope((b"x-forwarded-proto", b"https"), kind="websocket")
    apply_proxy_to_scope(scope, ALL)
    assert scope["scheme"] == "wss"
    scope = make_scope((b"x-forwarded-proto", b"http"), (b"x-forwarded-port", b"80"), kind="websocket")
    apply_proxy_to_scope(scope, ALL)
    assert scope["scheme"] == "ws"
    assert scope["server"] == ("10.0.0.1", 80)
    assert (b"host", b"10.0.0.1") in scope["headers"]


def test_scope_host_header_is_replaced_in_a_new_list() -> None:
    scope = make_scope((b"x-forwarded-host", b"[2001:db8::1]:8443"))
    original = scope["headers"]
    apply_proxy_to_scope(scope, ALL)
    assert scope["server"] == ("2001:db8::1", 8443)
    assert [value for name, value in scope["headers"] if name == b"host"] == [b"[2001:db8::1]:8443"]
    assert (b"accept", b"*/*") in scope["headers"]
    assert original[0] == (b"host", b"10.0.0.1:8000")  # the parser's list is not modified


def test_scope_port() -> None:
    scope = make_scope((b"x-forwarded-port", b"443"), (b"x-forwarded-proto", b"https"))
    apply_proxy_to_scope(scope, ALL)
    assert scope["server"] == ("10.0.0.1", 443)
    assert [value for name, value in scope["headers"] if name == b"host"] == [b"10.0.0.1"]


def test_scope_port_without_host_header() -> None:
    scope = make_scope((b"x-forwarded-port", b"8443"))
    scope["headers"] = scope["headers"][1:]
    apply_proxy_to_scope(scope, ALL)
    assert scope["server"] == ("10.0.0.1", 8443)
    assert all(name != b"host" for name, _ in scope["headers"])


@pytest.mark.parametrize("value", INVALID_HOSTS[:6])
def test_scope_invalid_host_is_ignored(value: str) -> None:
    scope = make_scope((b"x-forwarded-host", value.encode("latin-1")))
    apply_proxy_to_scope(scope, ALL)
    assert scope["server"] == ("10.0.0.1", 8000)
    assert scope["headers"][0] == (b"host", b"10.0.0.1:8000")


@pytest.mark.parametrize(
    ("value", "root", "root_path", "path", "raw_path"),
    [
        (b"/app", "", "/app", "/app/items/3", b"/app/items/3"),
        (b"/app/", "/api", "/app/api", "/app/api/items/3", b"/app/api/items/3"),
        (b"/caf%C3%A9", "", "/café", "/café/items/3", b"/caf%C3%A9/items/3"),  # ASGI paths are UTF-8
        (b"/", "", "", "/items/3", b"/items/3"),
        (b"//evil.example", "", "", "/items/3", b"/items/3"),
    ],
)
def test_scope_prefix(value: bytes, root: str, root_path: str, path: str, raw_path: bytes) -> None:
    scope = make_scope((b"x-forwarded-prefix", value), root_path=root)
    apply_proxy_to_scope(scope, ALL)
    assert (scope["root_path"], scope["path"], scope["raw_path"]) == (root_path, path, raw_path)


def test_scope_switches_are_honoured() -> None:
    scope = make_scope((b"x-forwarded-host", b"a.example"), (b"x-forwarded-prefix", b"/app"))
    apply_proxy_to_scope(scope, ProxyPolicy(["*"]))
    assert scope == make_scope((b"x-forwarded-host", b"a.example"), (b"x-forwarded-prefix", b"/app"))


_TOKENS = st.sampled_from(
    [
        "203.0.113.7",
        "10.0.0.5",
        "2001:db8::7",
        "https",
        "http",
        "HTTPS",
        "example.com",
        "example.com:8443",
        "[2001:db8::1]:81",
        "443",
        "80",
        "8443",
        "0",
        "/app",
        "/app/",
        "/",
        "//x",
        "/a/../b",
        "for=192.0.2.1",
        'for="[2001:db8::2]:1";proto=https;host=h.example',
        "bad value",
        "",
    ]
)
_NAMES = st.sampled_from(
    [
        "x-forwarded-for",
        "x-forwarded-proto",
        "forwarded",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-prefix",
    ]
)


@given(
    st.lists(st.tuples(_NAMES, st.lists(_TOKENS, min_size=1, max_size=3)), max_size=6),
    st.sampled_from(["", "/api"]),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_wsgi_and_asgi_follow_the_same_rules(
    fields: list[tuple[str, list[str]]], root: str, host: bool, port: bool, prefix: bool
) -> None:
    """Whatever the headers, the environ and the scope end up saying the same thing."""
    policy = ProxyPolicy(["10.0.0.0/8"], forwarded_host=host, forwarded_port=port, forwarded_prefix=prefix)
    headers = [(name.encode(), ", ".join(values).encode()) for name, values in fields]
    scope = make_scope(*headers, root_path=root)
    environ = host_env(SCRIPT_NAME=root, PATH_INFO="/items/3")
    for name, value in headers:
        key = "HTTP_" + name.decode().upper().replace("-", "_")
        text = value.decode()
        environ[key] = f"{environ[key]}, {text}" if key in environ else text
    apply_proxy_headers(environ, policy)
    apply_proxy_to_scope(scope, policy)
    assert scope["client"] == (environ["REMOTE_ADDR"], int(environ["REMOTE_PORT"]))
    assert scope["scheme"] == environ["wsgi.url_scheme"]
    assert scope["server"] == (environ["SERVER_NAME"], int(environ["SERVER_PORT"]))
    assert [value.decode() for name, value in scope["headers"] if name == b"host"] == [environ["HTTP_HOST"]]
    assert scope["root_path"] == environ["SCRIPT_NAME"]
    assert scope["path"] == environ["SCRIPT_NAME"] + environ["PATH_INFO"]
