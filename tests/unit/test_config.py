"""Unit tests for greenserve.config: value parsers, declarations, Config checks, generated text."""

from __future__ import annotations

import dataclasses
import math
import pickle
import re

import pytest

from greenserve import config as config_module
from greenserve.config import (
    ENV_PREFIX,
    SECTIONS,
    SETTINGS,
    Config,
    choice,
    describe_default,
    env_name,
    format_config,
    from_environ,
    from_mapping,
    parse_bool,
    parse_list,
    parse_size,
    parse_str,
    parse_umask,
    settings_markdown,
    suggest,
)
from greenserve.config_sources import read_python_config
from greenserve.errors import EXIT_CONFIG, ConfigError

HOOKS = tuple(getattr(config_module, "HOOKS", ()))


@pytest.fixture(autouse=True)
def _clean_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults read WEB_CONCURRENCY and PORT: make them deterministic."""
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    monkeypatch.delenv("PORT", raising=False)


def parser(name: str):
    return SETTINGS[name].parse


# -- parse_bool ----------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, "1", "true", "TRUE", " yes ", "on", "On", 1])
def test_parse_bool_true(value: object) -> None:
    assert parse_bool(value) is True


@pytest.mark.parametrize("value", [False, "0", "false", "False", "no", "off", "", "  ", 0])
def test_parse_bool_false(value: object) -> None:
    assert parse_bool(value) is False


@pytest.mark.parametrize("value", ["maybe", "2", "y", "n", "enabled", 2, None, 1.5])
def test_parse_bool_invalid(value: object) -> None:
    with pytest.raises(ValueError):
        parse_bool(value)


# -- numbers -------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [("1", 1), (" 2048 ", 2048), (65535, 65535), ("10", 10)])
def test_int_setting_valid(value: object, expected: int) -> None:
    assert parser("backlog")(value) == expected
    assert type(parser("backlog")(value)) is int


@pytest.mark.parametrize("value", ["0", "-1", "65536", 0, 100000, "abc", "", "1.5", None, True, False, [1]])
def test_int_setting_invalid(value: object) -> None:
    with pytest.raises(ValueError):
        parser("backlog")(value)


def test_int_setting_range_messages() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        parser("workers")("0")
    with pytest.raises(ValueError, match="at most 1024"):
        parser("workers")("1025")
    with pytest.raises(ValueError, match="an integer"):
        parser("workers")("two")


@pytest.mark.parametrize("value", [2.5, 1.0000001])
def test_int_setting_refuses_fractions(value: float) -> None:
    """A fractional value for an integer setting is an error, not silently truncated."""
    with pytest.raises(ValueError):
        parser("workers")(value)


@pytest.mark.parametrize(
    ("value", "expected"), [("0", 0.0), ("2.5", 2.5), (" 3600 ", 3600.0), (1, 1.0), (0.25, 0.25)]
)
def test_float_setting_valid(value: object, expected: float) -> None:
    assert parser("keep_alive")(value) == expected
    assert isinstance(parser("keep_alive")(value), float)


@pytest.mark.parametrize("value", ["-0.1", "3600.5", "inf", "-inf", "x", "", True, None])
def test_float_setting_invalid(value: object) -> None:
    with pytest.raises(ValueError):
        parser("keep_alive")(value)


@pytest.mark.parametrize("value", ["nan", math.nan])
@pytest.mark.parametrize("name", ["keep_alive", "graceful_timeout"])
def test_float_setting_refuses_nan(name: str, value: object) -> None:
    """NaN compares false with both bounds; it must not slip through the range check."""
    with pytest.raises(ValueError):
        parser(name)(value)


def test_every_numeric_setting_checks_its_range() -> None:
    for name, meta in SETTINGS.items():
        if meta.parse.__name__ in ("int", "float"):
            with pytest.raises(ValueError):
                meta.parse("-1000000000")


# -- parse_size ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0),
        ("512", 512),
        ("64K", 64 * 1024),
        ("64k", 64 * 1024),
        ("100M", 100 * 1024**2),
        ("1G", 1024**3),
        ("2t", 2 * 1024**4),
        ("10KB", 10 * 1024),
        ("10KiB", 10 * 1024),
        ("10 MiB", 10 * 1024**2),
        (" 7 ", 7),
        ("1024b", 1024),
        (4096, 4096),
        (0, 0),
    ],
)
def test_parse_size(value: object, expected: int) -> None:
    assert parse_size(value) == expected


@pytest.mark.parametrize(
    "value", ["", "-1", -1, "1.5M", "M", "10X", "10 K B", "ten", "0x10", True, None, "1e6"]
)
def test_parse_size_invalid(value: object) -> None:
    with pytest.raises(ValueError):
        parse_size(value)


# -- parse_umask -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("none", None),
        ("None", None),
        ("022", 0o22),
        ("22", 0o22),
        ("0o077", 0o77),
        ("777", 0o777),
        ("0", 0),
        ("0x1ff", 0o777),
        (0o27, 0o27),
        (0, 0),
    ],
)
def test_parse_umask(value: object, expected: int | None) -> None:
    assert parse_umask(value) == expected


@pytest.mark.parametrize("value", ["888", "1000", "abc", "-1", 0o1000, -1, "0x200", True])
def test_parse_umask_invalid(value: object) -> None:
    with pytest.raises(ValueError):
        parse_umask(value)


# -- lists, strings, choices -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a", ("a",)),
        ("a,b", ("a", "b")),
        (" a , b  c ", ("a", "b", "c")),
        ("", ()),
        (",,", ()),
        (["x", "y"], ("x", "y")),
        (("x",), ("x",)),
        ([], ()),
    ],
)
def test_parse_list(value: object, expected: tuple[str, ...]) -> None:
    assert parse_list(value) == expected


@pytest.mark.parametrize("value", [[1], ["a", None], 5, None, 1.5])
def test_parse_list_invalid(value: object) -> None:
    with pytest.raises(ValueError):
        parse_list(value)


def test_parse_str() -> None:
    assert parse_str("x") == "x"
    assert parse_str("") == ""
    for value in (1, None, b"x", ["x"]):
        with pytest.raises(ValueError):
            parse_str(value)


def test_choice() -> None:
    parse = choice("auto", "h11", "httptools")
    assert parse("H11") == "h11"
    assert parse(" auto ") == "auto"
    assert parse.choices == ("auto", "h11", "httptools")  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="auto, h11, httptools"):
        parse("llhttp")


def test_http_and_log_level_choices() -> None:
    assert parser("http")("HTTPTOOLS") == "httptools"
    assert parser("log_level")("WARNING") == "warning"
    with pytest.raises(ValueError):
        parser("log_level")("verbose")


# -- declarations ------------------------------------------------------------------------


def test_every_setting_is_declared_completely() -> None:
    flags: list[str] = []
    for name, meta in SETTINGS.items():
        assert meta.help.strip(), name
        assert meta.section in SECTIONS, name
        assert callable(meta.parse), name
        for flag in meta.flags:
            assert flag.startswith("-"), (name, flag)
        flags += meta.flags
        if meta.negative:
            flags.append(meta.negative)
    assert len(flags) == len(set(flags)), "a flag is declared twice"
    assert {meta.section for meta in SETTINGS.values()} == set(SECTIONS)
    assert list(SETTINGS) == [field.name for field in dataclasses.fields(Config)]


def test_every_default_parses_to_itself() -> None:
    config = Config()
    for name, meta in SETTINGS.items():
        value = getattr(config, name)
        assert meta.parse(value) == value, name


def test_env_names() -> None:
    assert ENV_PREFIX == "GREENSERVE_"
    assert env_name("max_body_size") == "GREENSERVE_MAX_BODY_SIZE"
    assert len({env_name(name) for name in SETTINGS}) == len(SETTINGS)


# -- from_mapping, suggest ---------------------------------------------------------------


def test_from_mapping_parses_strings() -> None:
    config = from_mapping(
        {"workers": "4", "access_log": "off", "bind": "127.0.0.1:1, [::1]:2", "max_body_size": "1M"}, "test"
    )
    assert config.workers == 4
    assert config.access_log is False
    assert config.bind == ("127.0.0.1:1", "[::1]:2")
    assert config.max_body_size == 1024**2


def test_from_mapping_unknown_setting_suggests() -> None:
    with pytest.raises(ConfigError) as info:
        from_mapping({"worker": 2}, "somewhere")
    message = str(info.value)
    assert message.startswith("somewhere: unknown setting 'worker'")
    assert "did you mean 'workers'?" in message
    assert info.value.exit_code == EXIT_CONFIG


def test_from_mapping_unknown_setting_without_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        from_mapping({"zzzzzzzz": 1}, "src")
    assert "did you mean" not in str(info.value)


def test_from_mapping_bad_value_names_source_and_setting() -> None:
    with pytest.raises(ConfigError, match=r"^src: backlog: must be at least 1"):
        from_mapping({"backlog": "0"}, "src")


@pytest.mark.parametrize(
    ("typo", "name"),
    [
        ("max-body-size", "max_body_size"),
        ("Keep_Alive", "keep_alive"),
        ("keep_alvie", "keep_alive"),
        ("bnd", "bind"),
    ],
)
def test_suggest(typo: str, name: str) -> None:
    assert suggest(typo) == f" (did you mean {name!r}?)"


# -- Config -----------------------------------------------------------------------------------


def test_defaults() -> None:
    config = Config()
    assert config.bind == ("127.0.0.1:8000",)
    assert config.workers == 1
    assert config.http == "auto"
    assert config.max_body_size == 100 * 1024**2
    assert config.tls is False


def test_defaults_from_platform_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("PORT", "9000")
    config = Config()
    assert config.workers == 3
    assert config.bind == ("0.0.0.0:9000",)
    monkeypatch.setenv("WEB_CONCURRENCY", "0")
    assert Config().workers == 1
    monkeypatch.setenv("PORT", "http")
    assert Config().bind == ("127.0.0.1:8000",)
    monkeypatch.setenv("WEB_CONCURRENCY", "many")
    with pytest.raises(ConfigError, match="WEB_CONCURRENCY"):
        Config()


def test_config_is_frozen_and_picklable() -> None:
    config = from_mapping({"workers": 3, "umask": "007", "bind": ["unix:/tmp/a.sock"]}, "test")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.workers = 4  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(config)) == config


@pytest.mark.parametrize(
    ("values", "pattern"),
    [
        ({"keyfile": "key.pem"}, "keyfile is set but certfile is not"),
        ({"cert_reqs": "required", "certfile": "c.pem"}, "needs ca_certs"),
        ({"cert_reqs": "optional", "certfile": "c.pem"}, "needs ca_certs"),
        ({"bind": ""}, "at least one address"),
        ({"bind": []}, "at least one address"),
        ({"root_path": "api"}, "root_path"),
        ({"root_path": "/api/"}, "root_path"),
        ({"root_path": "/"}, "root_path"),
        ({"keyfile_password_file": "pw"}, "keyfile_password_file is set but certfile is not"),
        ({"keyfile_password_env": "KEY_PW"}, "keyfile_password_env is set but certfile is not"),
        (
            {"certfile": "c.pem", "keyfile_password_file": "pw", "keyfile_password_env": "KEY_PW"},
            "give the password one way",
        ),
        ({"ssl_context": lambda config, default_ssl_context_factory: None}, "ssl_context is set but"),
    ],
)
def test_cross_checks(values: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        from_mapping(values, "test")


def test_cross_checks_accept_valid_combinations() -> None:
    config = from_mapping(
        {
            "certfile": "c.pem",
            "keyfile": "k.pem",
            "cert_reqs": "required",
            "ca_certs": "ca.pem",
            "root_path": "/api",
        },
        "test",
    )
    assert config.tls is True
    assert config.root_path == "/api"


def test_replace_validates() -> None:
    config = Config()
    changed = config.replace(workers="5", keep_alive=0)
    assert changed.workers == 5 and changed.keep_alive == 0.0
    assert config.workers == 1
    with pytest.raises(ConfigError):
        config.replace(workers=0)
    with pytest.raises(ConfigError, match="unknown setting"):
        config.replace(wrokers=2)


def test_as_dict() -> None:
    assert set(Config().as_dict()) == set(SETTINGS)


# -- environment -----------------------------------------------------------------------------


def test_from_environ() -> None:
    values = from_environ(
        {"GREENSERVE_WORKERS": "3", "GREENSERVE_ACCESS_LOG": "0", "PATH": "/bin", "GREENSERVE_CONFIG": "x.py"}
    )
    assert values == {"workers": "3", "access_log": "0"}


def test_from_environ_unknown_variable_suggests() -> None:
    with pytest.raises(ConfigError) as info:
        from_environ({"GREENSERVE_WORKRES": "3"})
    assert "GREENSERVE_WORKRES" in str(info.value)
    assert "did you mean 'workers'?" in str(info.value)


@pytest.mark.skipif(not HOOKS, reason="no hooks declared")
def test_from_environ_refuses_hooks() -> None:
    with pytest.raises(ConfigError, match="configuration file"):
        from_environ({env_name(HOOKS[0]): "module:function"})


# -- generated text --------------------------------------------------------------------------


def test_settings_markdown_mentions_every_setting() -> None:
    text = settings_markdown()
    for section in SECTIONS:
        assert f"## {section}\n" in text
    for name, meta in SETTINGS.items():
        assert f"### `{name}`\n" in text, name
        assert meta.help in text, name
        if name in HOOKS:
            continue
        assert f"`{env_name(name)}`" in text, name
        for flag in meta.flags:
            assert f"`{flag}" in text, flag
        if meta.negative:
            assert f"`{meta.negative}" in text


def test_settings_markdown_negative_flags_take_no_value() -> None:
    """``--no-server-header`` is a switch (store_const): the docs must not show a metavar after it."""
    text = settings_markdown()
    for meta in SETTINGS.values():
        if meta.negative:
            assert f"`{meta.negative}`" in text, meta.negative
            assert f"`{meta.negative} " not in text, meta.negative


def test_settings_markdown_is_stable() -> None:
    assert settings_markdown() == settings_markdown()
    assert settings_markdown().endswith("\n") and not settings_markdown().endswith("\n\n")


def test_describe_default() -> None:
    assert describe_default("backlog") == "2048"
    assert describe_default("reuse_port") == "off"
    assert describe_default("access_log") == "on"
    assert describe_default("chdir") == "(empty)"
    assert describe_default("pythonpath") == "(none)"
    assert describe_default("forwarded_allow_ips") == "127.0.0.1,::1"
    assert describe_default("max_body_size") == "100M"


def _round_trip(config: Config, tmp_path) -> Config:
    path = tmp_path / "printed.conf.py"
    path.write_text(format_config(config), encoding="utf-8")
    return from_mapping(read_python_config(str(path)), str(path))


def test_format_config_round_trips_defaults(tmp_path) -> None:
    assert _round_trip(Config(), tmp_path) == Config()


def test_format_config_round_trips_changed_settings(tmp_path) -> None:
    config = from_mapping(
        {
            "app": "pkg.mod:create_app('x', debug=True)",
            "bind": ["[::1]:0", "unix:/tmp/it's.sock"],
            "workers": 4,
            "umask": "007",
            "keep_alive": 2.5,
            "max_body_size": "10M",
            "access_log": False,
            "access_logformat": '%(h)s "%(r)s" \\ \u00e9',
            "root_path": "/api",
            "forwarded_allow_ips": ["10.0.0.0/8"],
            "http": "h11",
        },
        "test",
    )
    assert _round_trip(config, tmp_path) == config


def test_format_config_is_valid_python_with_every_setting() -> None:
    text = format_config(Config())
    namespace: dict = {}
    exec(compile(text, "printed", "exec"), namespace)
    for name in SETTINGS:
        if name in HOOKS:
            continue
        assert re.search(rf"^{name} = ", text, re.MULTILINE), name


# -- gunicorn's spellings and values -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "alias", "canonical"),
    [
        ("pidfile", "--pid", "--pidfile"),
        ("error_logfile", "--log-file", "--error-logfile"),
        ("limit_request_field_size", "--limit-request-field_size", "--limit-request-field-size"),
        ("proc_name", "--name", "--proc-name"),
        ("umask", "-m", "--umask"),
        ("raw_env", "-e", "--env"),
        ("worker_class", "-k", "--worker-class"),
    ],
)
def test_gunicorn_flags_are_other_spellings_of_the_setting(name: str, alias: str, canonical: str) -> None:
    meta = SETTINGS[name]
    assert alias in meta.flags
    assert meta.long_flag == canonical  # what greenserve writes and names in messages


def test_every_boolean_has_a_negative_flag() -> None:
    for name, meta in SETTINGS.items():
        if meta.parse is parse_bool:
            assert meta.negative == "--no-" + meta.long_flag.removeprefix("--"), name


# -- Proxy settings ---------------------------------------------------------------------------


def test_proxy_defaults() -> None:
    config = Config()
    assert config.proxy_protocol == "off"
    assert config.proxy_allow_ips == ("127.0.0.1", "::1")
    assert config.forwarded_allow_ips == ("127.0.0.1", "::1")
    assert config.trust_unix_peers is True
    assert (config.forwarded_host, config.forwarded_port, config.forwarded_prefix) == (False, False, False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, "none"), ("1", "optional"), (" 2 ", "required"), ("REQUIRED", "required"), ("none", "none")],
)
def test_cert_reqs_accepts_gunicorn_numbers(value: object, expected: str) -> None:
    assert parser("cert_reqs")(value) == expected


@pytest.mark.parametrize("value", [3, "-1", "always", True])
def test_cert_reqs_refuses_other_values(value: object) -> None:
    with pytest.raises(ValueError, match="none, optional or required"):
        parser("cert_reqs")(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1.2", "1.2"), (" 1.3 ", "1.3"), ("TLSv1.3", "1.3"), ("TLSv1_2", "1.2"), ("tlsv1.3", "1.3")],
)
def test_tls_min_version_spellings(value: str, expected: str) -> None:
    assert parser("tls_min_version")(value) == expected


@pytest.mark.parametrize("value", ["1.1", "1.0", "SSLv3", "TLS", "", "1.4"])
def test_tls_min_version_refuses_other_versions(value: str) -> None:
    with pytest.raises(ValueError, match=r"expected 1\.2 or 1\.3"):
        parser("tls_min_version")(value)


@pytest.mark.parametrize(
    "value",
    ["ECDHE+AESGCM:ECDHE+CHACHA20", "HIGH:!aNULL:!MD5", "DEFAULT:@SECLEVEL=2", "ECDHE-RSA-AES128-GCM-SHA256"],
)
def test_ciphers_accepts_openssl_cipher_lists(value: str) -> None:
    assert parser("ciphers")(value) == value


@pytest.mark.parametrize("value", ["HIGH;rm -rf /", "ECDHE\nAES", "x" * 2001, "ÉCDHE", 42])
def test_ciphers_refuses_what_cannot_be_a_cipher_list(value: object) -> None:
    with pytest.raises(ValueError, match=r"OpenSSL cipher list|expected a string"):
        parser("ciphers")(value)


def test_keyfile_password_env_is_a_variable_name() -> None:
    parse = parser("keyfile_password_env")
    assert parse("TLS_KEY_PASSWORD") == "TLS_KEY_PASSWORD"
    assert parse("") == ""
    for value in ("1ABC", "KEY-PASSWORD", "hunter2 with spaces", "A=B"):
        with pytest.raises(ValueError, match="name of an environment variable"):
            parse(value)
    with pytest.raises(ValueError, match="GREENSERVE_"):
        parse("GREENSERVE_KEY_PASSWORD")


def test_the_key_password_itself_is_no_setting() -> None:
    assert not [name for name in SETTINGS if "password" in name and not name.endswith(("_file", "_env"))]


def test_ssl_context_hook_signature_is_checked() -> None:
    def gunicorn_style(config, default_ssl_context_factory):
        return default_ssl_context_factory()

    config = from_mapping({"certfile": "c.pem", "ssl_context": gunicorn_style}, "test")
    assert config.ssl_context is gunicorn_style
    with pytest.raises(ConfigError, match="cannot be called with greenserve's arguments"):
        from_mapping({"certfile": "c.pem", "ssl_context": lambda context: context}, "test")


def test_ssl_context_hook_is_configuration_file_only() -> None:
    assert "ssl_context" in HOOKS
    assert not SETTINGS["ssl_context"].flags
    with pytest.raises(ConfigError, match="configuration file"):
        from_environ({env_name("ssl_context"): "module:function"})


@pytest.mark.parametrize("name", ["limit_request_line", "limit_request_fields", "limit_request_field_size"])
def test_gunicorn_unlimited_header_limit_is_refused_clearly(name: str) -> None:
    with pytest.raises(ValueError, match="gunicorn's 'unlimited'"):
        parser(name)("0")
    assert parser(name)("100") == 100


def test_raw_env() -> None:
    parse = parser("raw_env")
    assert parse(["A=1", "B=x=y", "EMPTY="]) == ("A=1", "B=x=y", "EMPTY=")
    assert parse("A=1, B=two words") == ("A=1", "B=two words")  # strings split on commas only
    assert Config().raw_env == ()


@pytest.mark.parametrize(
    ("items", "error"),
    [
        (["NOEQUALS"], "expected KEY=VALUE"),
        (["=value"], "expected KEY=VALUE"),
        ([" A=1"], "expected KEY=VALUE"),
        (["A\x01=1"], "expected KEY=VALUE"),
        (["A=\0"], "NUL"),
        (["GREENSERVE_WORKERS=4"], "settings directly"),
    ],
)
def test_raw_env_refuses(items: list[str], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parser("raw_env")(items)


@pytest.mark.parametrize("value", ["", "   ", "sync\nINFO forged", "x" * 201, 3])
def test_worker_class_must_be_a_printable_name(value: object) -> None:
    with pytest.raises(ValueError):
        parser("worker_class")(value)


def test_worker_class_keeps_the_name() -> None:
    assert parser("worker_class")(" uvicorn.workers.UvicornWorker ") == "uvicorn.workers.UvicornWorker"
    assert Config().worker_class == "gevent"


def test_initgroups_needs_user() -> None:
    with pytest.raises(ConfigError, match="initgroups needs user"):
        Config(initgroups=True)
    assert Config(initgroups=True, user="nobody").initgroups


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("keepalive", "did you mean 'keep_alive'? 'keepalive' is gunicorn's name"),
        ("preload_app", "did you mean 'preload'?"),
        ("errorlog", "did you mean 'error_logfile'?"),
        ("threads", "runs each request in a greenlet: threads has no equivalent"),
        ("daemon", "does not daemonize"),
        ("on_reload", "gunicorn's on_reload hook does not exist"),
    ],
)
def test_suggest_explains_gunicorn_names(name: str, expected: str) -> None:
    assert expected in suggest(name)
    with pytest.raises(ConfigError, match=re.escape(expected)):
        from_mapping({name: 1}, "gunicorn.conf.py")


# -- format_config with sources --------------------------------------------------------------------


def test_format_config_with_sources_is_valid_python() -> None:
    config = Config(keep_alive=3, access_logformat="%(h)s  # not a comment")
    sources = {"keep_alive": "command line", "workers": "/srv/app/greenserve.conf.py\nimport os"}
    text = format_config(config, sources)
    namespace: dict[str, object] = {}
    exec(compile(text, "greenserve.conf.py", "exec"), namespace)
    assert namespace["keep_alive"] == 3
    assert namespace["access_logformat"] == "%(h)s  # not a comment"
    assert "import os" not in namespace
    lines = {line.split(" = ", 1)[0]: line for line in text.splitlines()}
    assert lines["keep_alive"].endswith("  # command line")
    assert lines["workers"].endswith("  # /srv/app/greenserve.conf.py\\nimport os")
    assert lines["backlog"].endswith("  # default")
    assert format_config(config).splitlines()[0] == "app = ''"  # no sources: no comments


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("off", "off"),
        ("V1", "v1"),
        (" v2 ", "v2"),
        ("auto", "auto"),
        (True, "auto"),
        (False, "off"),
        ("true", "auto"),
        ("1", "auto"),
        ("false", "off"),
        ("0", "off"),
    ],
)
def test_proxy_protocol_modes(value: object, expected: str) -> None:
    assert parser("proxy_protocol")(value) == expected


@pytest.mark.parametrize("value", ["v3", "on", "both", "", "1.0", 2])
def test_proxy_protocol_invalid(value: object) -> None:
    with pytest.raises(ValueError, match="expected one of off, v1, v2, auto"):
        parser("proxy_protocol")(value)


@pytest.mark.parametrize("name", ["forwarded_allow_ips", "proxy_allow_ips"])
def test_allow_lists_accept_addresses_networks_and_star(name: str) -> None:
    assert parser(name)("10.0.0.1, 10.0.0.0/8 ,fd00::/8, ::1") == (
        "10.0.0.1",
        "10.0.0.0/8",
        "fd00::/8",
        "::1",
    )
    assert parser(name)(["*"]) == ("*",)
    assert parser(name)("") == ()


@pytest.mark.parametrize(
    ("name", "flag"),
    [("forwarded_allow_ips", "--forwarded-allow-ips"), ("proxy_allow_ips", "--proxy-allow-from")],
)
@pytest.mark.parametrize("bad", ["10.0.0.0/33", "10.0.0.1/abc", "nginx", "10.0.0.256"])
def test_bad_allow_list_entry_is_a_config_error(name: str, flag: str, bad: str) -> None:
    from greenserve.config_sources import resolve

    with pytest.raises(ConfigError) as info:
        resolve({name: f"127.0.0.1,{bad}"}, environ={}, cwd="/")
    message = str(info.value)
    assert message.startswith(f"command line: {flag}: {bad!r} is not an IP address")
    with pytest.raises(ConfigError, match=rf"^src: {name}: "):
        from_mapping({name: [bad]}, "src")


def test_proxy_settings_from_the_environment() -> None:
    values = from_environ(
        {
            "GREENSERVE_PROXY_PROTOCOL": "v2",
            "GREENSERVE_PROXY_ALLOW_IPS": "10.0.0.0/8",
            "GREENSERVE_TRUST_UNIX_PEERS": "false",
            "GREENSERVE_FORWARDED_HOST": "true",
        }
    )
    config = from_mapping(values, "environment")
    assert config.proxy_protocol == "v2"
    assert config.proxy_allow_ips == ("10.0.0.0/8",)
    assert config.trust_unix_peers is False
    assert config.forwarded_host is True


def test_proxy_flags_on_the_command_line() -> None:
    from greenserve.cli import build_parser

    args = build_parser().parse_args(
        [
            "--proxy-protocol",
            "auto",
            "--proxy-allow-from",
            "10.0.0.0/8",
            "--no-trust-unix-peers",
            "--forwarded-host",
            "--forwarded-port",
            "--forwarded-prefix",
            "app:app",
        ]
    )
    values = {name: value for name, value in vars(args).items() if name in SETTINGS}
    config = from_mapping(values, "command line")
    assert (config.proxy_protocol, config.proxy_allow_ips, config.trust_unix_peers) == (
        "auto",
        ("10.0.0.0/8",),
        False,
    )
    assert (config.forwarded_host, config.forwarded_port, config.forwarded_prefix) == (True, True, True)
