"""Unit tests for greenserve.protocol.proxy: trusted Forwarded / X-Forwarded-* handling."""

from __future__ import annotations

from typing import Any

import pytest

from greenserve.protocol.proxy import ProxyPolicy, apply_proxy_headers


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
