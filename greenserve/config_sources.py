"""Where settings come from, lowest precedence first:

1. defaults declared in :class:`greenserve.config.Config`;
2. ``[tool.greenserve]`` in ``pyproject.toml`` (in the working directory);
3. a Python configuration file: ``--config PATH`` (or ``GREENSERVE_CONFIG``),
   else ``greenserve.conf.py`` in the working directory when it exists;
4. ``GREENSERVE_*`` environment variables;
5. the command line.

Every source is validated against the same declarations; an unknown name is
an error with a suggestion, never silently ignored.
"""

from __future__ import annotations

import os
import runpy
import tomllib
import types
from collections.abc import Callable, Mapping
from typing import Any

from greenserve.config import SETTINGS, Config, env_name, from_environ, from_mapping, suggest
from greenserve.errors import ConfigError

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
            raise ConfigError(
                f"{path}: unknown setting {name!r}{suggest(name)} "
                "(prefix helper names with '_' to keep them out of the settings)"
            )
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


def file_and_environment_settings(
    *,
    config_path: str | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The settings given by files and the environment (validated), and the files read."""
    environ = os.environ if environ is None else environ
    cwd = cwd or os.getcwd()
    files: list[str] = []
    merged: dict[str, Any] = {}

    pyproject = os.path.join(cwd, "pyproject.toml")
    if os.path.isfile(pyproject):
        values = read_pyproject(pyproject)
        if values:
            files.append(pyproject)
            merged.update(_validated(values, f"{pyproject} [tool.greenserve]"))

    path = config_path or environ.get("GREENSERVE_CONFIG")
    if not path:
        default = os.path.join(cwd, DEFAULT_CONFIG_FILE)
        path = default if os.path.isfile(default) else None
    if path:
        files.append(path)
        merged.update(_validated(read_python_config(path), path))

    merged.update(_validated(from_environ(environ), "environment", label=env_name))
    return merged, files


def resolve(
    argv_values: Mapping[str, Any],
    *,
    config_path: str | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> tuple[Config, list[str]]:
    """Merge every source into one validated Config; also returns the files read."""
    merged, files = file_and_environment_settings(config_path=config_path, environ=environ, cwd=cwd)
    merged.update(_validated(dict(argv_values), "command line", label=_flag))
    return from_mapping(merged, "configuration"), files


def _flag(name: str) -> str:
    meta = SETTINGS[name]
    return meta.flags[-1] if meta.flags else (meta.metavar or name)


def _validated(values: Mapping[str, Any], source: str, label: Callable[[str], str] = str) -> dict[str, Any]:
    """Parse each value now, so errors name the source (and the flag or variable) that gave them."""
    out: dict[str, Any] = {}
    for name, raw in values.items():
        try:
            out[name] = SETTINGS[name].parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{source}: {label(name)}: {exc}") from None
    return out
