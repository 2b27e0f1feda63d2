"""Resolve an application spec to a callable.

``module:attr``, ``module:attr.sub``, ``module`` (attribute ``application``,
as Django's ``wsgi.py`` names it) and ``module:factory(arg, key=value)``
where the arguments are Python literals (never evaluated code). Failures
become :class:`AppLoadError` with one line that says what went wrong and
where, which the worker turns into exit code 4.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import stat
import sys
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from greenserve.errors import AppLoadError

DEFAULT_ATTRIBUTE = "application"


def split_spec(spec: str) -> tuple[str, str]:
    """``"pkg.mod:app"`` -> ``("pkg.mod", "app")``."""
    spec = spec.strip()
    if not spec:
        raise AppLoadError(
            "no application given: expected 'module:attribute', e.g. myproject.wsgi:application"
        )
    module, sep, expression = spec.partition(":")
    if not module:
        raise AppLoadError(f"invalid application {spec!r}: the module name is missing")
    return module, expression.strip() if sep else DEFAULT_ATTRIBUTE


def _literal_args(call: ast.Call, spec: str) -> tuple[list[Any], dict[str, Any]]:
    try:
        args = [ast.literal_eval(arg) for arg in call.args]
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg}
    except ValueError:
        raise AppLoadError(
            f"invalid application {spec!r}: factory arguments must be literals (strings, numbers, ...)"
        ) from None
    if any(kw.arg is None for kw in call.keywords):
        raise AppLoadError(f"invalid application {spec!r}: **kwargs is not supported")
    return args, kwargs


def _dotted(node: ast.AST, spec: str) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [*_dotted(node.value, spec), node.attr]
    raise AppLoadError(f"invalid application {spec!r}: expected 'module:name' or 'module:factory()'")


def _where(exc: BaseException) -> str:
    """``file.py:12``: the innermost frame of the application's own code."""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if "importlib" not in frame.filename and os.sep + "greenserve" + os.sep not in frame.filename:
            return f" ({os.path.relpath(frame.filename)}:{frame.lineno})"
    return ""


def _unreadable_hint() -> str:
    """Why a module may be invisible: import skips directories this user cannot read (``--user``)."""
    blocked = [entry for entry in sys.path if entry and _unreadable_dir(entry)]
    if not blocked:
        return ""
    return f" (this process cannot read {', '.join(blocked)}: check --user and the permissions)"


def _unreadable_dir(path: str) -> bool:
    try:
        mode = os.stat(path).st_mode
    except PermissionError:
        return True
    except OSError:
        return False
    return stat.S_ISDIR(mode) and not os.access(path, os.R_OK | os.X_OK)


def prepare_path(chdir: str = "", pythonpath: Iterable[str] = ()) -> None:
    """Make the application importable as from the directory it is served from."""
    if chdir:
        try:
            os.chdir(chdir)
        except OSError as exc:
            raise AppLoadError(f"--chdir {chdir}: {exc.strerror}") from None
    for path in reversed(list(pythonpath)):
        if path not in sys.path:
            sys.path.insert(0, os.path.abspath(path))
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)


def load_app(spec: str) -> Callable:
    """Import and return the application callable named by ``spec``."""
    module_name, expression = split_spec(spec)
    try:
        tree = ast.parse(expression, mode="eval").body
    except SyntaxError:
        raise AppLoadError(f"invalid application {spec!r}: {expression!r} is not a name or a call") from None
    call = tree if isinstance(tree, ast.Call) else None
    path = _dotted(call.func if call else tree, spec)

    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AppLoadError(
                f"cannot import {module_name!r}: no module named {exc.name!r}{_unreadable_hint()}"
            ) from exc
        raise AppLoadError(
            f"cannot import {module_name!r}: {type(exc).__name__}: {exc}{_where(exc)}"
        ) from exc
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise AppLoadError(
            f"cannot import {module_name!r}: {type(exc).__name__}: {exc}{_where(exc)}"
        ) from exc

    obj: Any = module
    for name in path:
        try:
            obj = getattr(obj, name)
        except AttributeError:
            raise AppLoadError(f"module {module_name!r} has no attribute {'.'.join(path)!r}") from None

    if call is not None:
        args, kwargs = _literal_args(call, spec)
        try:
            obj = obj(*args, **kwargs)
        except Exception as exc:
            raise AppLoadError(
                f"application factory {spec!r} failed: {type(exc).__name__}: {exc}{_where(exc)}"
            ) from exc

    if not callable(obj):
        raise AppLoadError(f"{spec!r} is a {type(obj).__name__}, not a callable application")
    return obj


def _is_coroutine_callable(obj: Any) -> bool:
    if inspect.isclass(obj):
        return False
    if inspect.iscoroutinefunction(obj):
        return True
    call = getattr(obj, "__call__", None)  # noqa: B004 - instances with an async __call__
    return inspect.iscoroutinefunction(call)


def detect_interface(app: Callable) -> str:
    """``"asgi3"``, ``"asgi2"`` or ``"wsgi"``, from the callable's shape.

    ASGI 3: ``async def app(scope, receive, send)``. ASGI 2: a class (or
    callable) taking ``scope`` and returning an ``async def (receive, send)``.
    Anything else is WSGI. ``--interface`` overrides the guess.
    """
    if _is_coroutine_callable(app):
        return "asgi3"
    target = app.__init__ if inspect.isclass(app) else app
    try:
        params = [
            p
            for p in inspect.signature(target).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"
        ]
    except (TypeError, ValueError):
        return "wsgi"
    if inspect.isclass(app) and len(params) == 1:
        call = getattr(app, "__call__", None)  # noqa: B004
        if call is not None and inspect.iscoroutinefunction(call):
            return "asgi2"
    return "wsgi"
