"""Where settings come from, lowest precedence first:

1. defaults declared in :class:`greenserve.config.Config`;
2. ``[tool.greenserve]`` in ``pyproject.toml`` (in the working directory);
3. a Python configuration file: ``--config PATH`` (or ``GREENSERVE_CONFIG``),
   else ``greenserve.conf.py`` in the working directory when it exists;
4. ``GREENSERVE_*`` environment variables;
5. the command line.

Every source is validated against the same declarations; an unknown name is
an error with a suggestion, never silently ignored. :func:`setting_sources`
tells, for each setting, which source gave its value (``--print-config``
shows it).
"""

from __future__ import annotations

import os
import runpy
import tomllib
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from greenserve.config import SETTINGS, Config, env_name, from_environ, from_mapping, suggest
from greenserve.errors import ConfigError
from greenserve.migration import explain_name

DEFAULT_CONFIG_FILE = "greenserve.conf.py"
#: The module name a configuration file runs as.
CONFIG_MODULE = "__greenserve_config__"


def read_python_config(path: str) -> dict[str, Any]:
    """Settings from a Python file: its public, non-module globals."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist")
    from greenserve import hooks

    try:
        # Subscriptions the file makes replace those it made last time (HUP reruns it).
        with hooks.loading_config_file():
            namespace = runpy.run_path(path, run_name=CONFIG_MODULE)
    except Exception as exc:  # noqa: BLE001 - any error in user code is reported in one line
        raise ConfigError(f"config file {path!r} failed: {type(exc).__name__}: {exc}") from None
    values: dict[str, Any] = {}
    for name, value in namespace.items():
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        if getattr(value, "__module__", CONFIG_MODULE) != CONFIG_MODULE and name not in SETTINGS:
            continue  # imported, not defined here: `from x import y` is not a setting
        if name not in SETTINGS:
            # A gunicorn setting is not a helper: its own explanation is enough.
            helper = (
                ""
                if explain_name(name)
                else " (prefix helper names with '_' to keep them out of the settings)"
            )
            raise ConfigError(f"{path}: unknown setting {name!r}{suggest(name)}{helper}")
        values[name] = value
    return values


def read_pyproject(path: str) -> dict[str, Any]:
    """Settings from ``[tool.greenserve]``; keys may use dashes or underscores."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    section = data.get("tool", {}).get("greenserve", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [tool.greenserve] must be a table")
    values: dict[str, Any] = {}
    for key, value in section.items():
        name = key.replace("-", "_")
        if name not in SETTINGS:
            raise ConfigError(f"{path}: [tool.greenserve] unknown setting {key!r}{suggest(name)}")
        values[name] = value
    return values


#: The source of a setting nothing else set (see :func:`setting_sources`).
DEFAULT = "default"
#: The source of a setting given as a flag or as the APP argument.
COMMAND_LINE = "command line"
#: Conventional variables that shape a default: ``{setting: variable}``.
DEFAULT_VARIABLES = {"workers": "WEB_CONCURRENCY", "bind": "PORT"}


@dataclass(frozen=True)
class Gathered:
    """Every source, validated and merged by precedence."""

    #: ``{setting: value}`` for the settings some source gave.
    values: dict[str, Any]
    #: ``{setting: source}`` for the same settings: a file path (pyproject.toml's
    #: followed by ``[tool.greenserve]``), a ``GREENSERVE_*`` variable name, or
    #: :data:`COMMAND_LINE`.
    sources: dict[str, str]
    #: The configuration files read, lowest precedence first.
    files: list[str]


def gather(
    argv_values: Mapping[str, Any] | None = None,
    *,
    config_path: str | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> Gathered:
    """Read every source in precedence order, validating each value as it is read.

    A Python configuration file is executed (as on every ``SIGHUP``); nothing
    else has side effects.
    """
    environ = os.environ if environ is None else environ
    cwd = cwd or os.getcwd()
    files: list[str] = []
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def merge(given: dict[str, Any], source: Callable[[str], str]) -> None:
        values.update(given)
        sources.update((name, source(name)) for name in given)

    pyproject = os.path.join(cwd, "pyproject.toml")
    if os.path.isfile(pyproject):
        raw = read_pyproject(pyproject)
        if raw:
            label = f"{pyproject} [tool.greenserve]"
            files.append(pyproject)
            merge(_validated(raw, label), lambda name: label)

    path = config_path or environ.get("GREENSERVE_CONFIG")
    if not path:
        default = os.path.join(cwd, DEFAULT_CONFIG_FILE)
        path = default if os.path.isfile(default) else None
    if path:
        path = os.path.abspath(path)
        files.append(path)
        merge(_validated(read_python_config(path), path), lambda name: path)

    merge(_validated(from_environ(environ), "environment", label=env_name), env_name)
    if argv_values:
        merge(_validated(dict(argv_values), "command line", label=_flag), lambda name: COMMAND_LINE)
    return Gathered(values, sources, files)


def complete_sources(sources: Mapping[str, str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``sources`` with every other setting attributed to its default.

    A default shaped by ``WEB_CONCURRENCY`` or ``PORT`` is attributed to that
    variable, which is what the user has to change.
    """
    environ = os.environ if environ is None else environ
    complete = {}
    for name in SETTINGS:
        if name in sources:
            complete[name] = sources[name]
            continue
        variable = DEFAULT_VARIABLES.get(name)
        shaped = variable is not None and environ.get(variable, "").strip()
        if name == "bind" and shaped and not str(shaped).isdigit():
            shaped = False  # a PORT that is not a number leaves the default alone
        complete[name] = variable if shaped and variable else DEFAULT
    return complete


def setting_sources(
    argv_values: Mapping[str, Any] | None = None,
    *,
    config_path: str | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> dict[str, str]:
    """``{setting: source}`` for every setting: where its current value comes from.

    A source is :data:`DEFAULT`, a ``GREENSERVE_*`` variable name (or
    ``WEB_CONCURRENCY``/``PORT`` for the defaults they shape), a
    configuration file path (``... [tool.greenserve]`` for pyproject.toml), or
    :data:`COMMAND_LINE`. Reads the sources as :func:`resolve` does, running
    the configuration file again.
    """
    gathered = gather(argv_values, config_path=config_path, environ=environ, cwd=cwd)
    return complete_sources(gathered.sources, environ)


def file_and_environment_settings(
    *,
    config_path: str | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The settings given by files and the environment (validated), and the files read."""
    gathered = gather(None, config_path=config_path, environ=environ, cwd=cwd)
    return gathered.values, gathered.files


def resolve(
    argv_values: Mapping[str, Any],
    *,
    config_path: str | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> tuple[Config, list[str]]:
    """Merge every source into one validated Config; also returns the files read."""
    config, files, _ = resolve_with_sources(argv_values, config_path=config_path, environ=environ, cwd=cwd)
    return config, files


def resolve_with_sources(
    argv_values: Mapping[str, Any],
    *,
    config_path: str | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> tuple[Config, list[str], dict[str, str]]:
    """:func:`resolve`, and ``{setting: source}`` for every setting (see :func:`setting_sources`)."""
    gathered = gather(argv_values, config_path=config_path, environ=environ, cwd=cwd)
    config = from_mapping(gathered.values, "configuration")
    return config, gathered.files, complete_sources(gathered.sources, environ)


def _flag(name: str) -> str:
    meta = SETTINGS[name]
    return meta.long_flag if meta.flags else (meta.metavar or name)


def _validated(values: Mapping[str, Any], source: str, label: Callable[[str], str] = str) -> dict[str, Any]:
    """Parse each value now, so errors name the source (and the flag or variable) that gave them."""
    out: dict[str, Any] = {}
    for name, raw in values.items():
        try:
            out[name] = SETTINGS[name].parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{source}: {label(name)}: {exc}") from None
    return out
