"""Resolve an application spec to a callable.

``module:attr``, ``module:attr.sub``, ``module`` (attribute ``application``,
as Django's ``wsgi.py`` names it) and ``module:factory(arg, key=value)``
where the arguments are Python literals (never evaluated code). Failures
become :class:`AppLoadError` with one line that says what went wrong and
where, which the worker turns into exit code 4.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import importlib
import inspect
import os
import shlex
import site
import stat
import sys
import sysconfig
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from greenserve.errors import AppLoadError

DEFAULT_ATTRIBUTE = "application"
#: Names applications are usually given, in the order a hint proposes them.
USUAL_NAMES = ("application", "app", "api", "asgi_app", "wsgi_app")
USUAL_FACTORIES = ("create_app", "make_app", "get_app", "get_application")
#: Read at most this much of a file to guess its application's name for a hint.
_HINT_READ_LIMIT = 1024 * 1024


def split_spec(spec: str) -> tuple[str, str]:
    """``"pkg.mod:app"`` -> ``("pkg.mod", "app")``."""
    spec = spec.strip()
    if not spec:
        raise AppLoadError(
            "no application given: expected 'module:attribute', e.g. myproject.wsgi:application"
        )
    if _is_file_path(spec):
        raise AppLoadError(file_spec_hint(spec))
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


def _library_dirs() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the standard library and greenserve, installed packages): code that is not the user's."""
    try:
        paths = sysconfig.get_paths()
    except Exception:  # noqa: BLE001 - e.g. _sysconfigdata unreadable after --user: fall back
        paths = {}
    own = [
        os.path.dirname(os.__file__),
        paths.get("stdlib", ""),
        paths.get("platstdlib", ""),
        os.path.dirname(os.path.abspath(__file__)),
    ]
    installed = [paths.get("purelib", ""), paths.get("platlib", "")]
    with contextlib.suppress(Exception):
        installed += site.getsitepackages()
    with contextlib.suppress(Exception):
        if site.ENABLE_USER_SITE:
            installed.append(site.getusersitepackages())

    def prefixes(dirs: list[str]) -> tuple[str, ...]:
        found = set()
        for directory in dirs:
            if directory:
                found.add(os.path.join(os.path.abspath(directory), ""))
                found.add(os.path.join(os.path.realpath(directory), ""))
        return tuple(found)

    return prefixes(own), prefixes(installed)


def _display_path(filename: str) -> str:
    """Relative to the working directory when below it, else absolute."""
    relative = os.path.relpath(filename)
    return os.path.abspath(filename) if relative.startswith(os.pardir) else relative


def _classify(filename: str, own: tuple[str, ...], installed: tuple[str, ...]) -> str:
    """``"installed"`` (site-packages), ``"own"`` (standard library, greenserve) or ``"user"``."""
    for path in {os.path.abspath(filename), os.path.realpath(filename)}:
        if path.startswith(installed):  # before "own": site-packages lives inside the stdlib dir
            return "installed"
        if path.startswith(own):
            return "own"
    return "user"


def user_frame(exc: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame of the application's own code in ``exc``'s traceback.

    Frames of the standard library (``<frozen os>``, ``json/decoder.py``),
    importlib and greenserve are never the user's code; frames of installed
    packages are skipped too, unless the application itself is installed.
    """
    own, installed = _library_dirs()
    frames = [
        (frame, _classify(frame.filename, own, installed))
        for frame in traceback.extract_tb(exc.__traceback__)
        if frame.filename and not frame.filename.startswith("<")
    ]
    for wanted in ("user", "installed"):
        for frame, kind in reversed(frames):
            if kind == wanted:
                return frame
    return None


def _where(exc: BaseException) -> str:
    """`` (file.py:12)``: where in the application's own code ``exc`` was raised."""
    frame = _quietly(user_frame, exc)
    return f" ({_display_path(frame.filename)}:{frame.lineno})" if frame else ""


def _quietly(hint: Callable[..., Any], *args: Any) -> Any:
    """A hint for an error message; if finding it fails, no hint rather than a new error."""
    try:
        return hint(*args)
    except Exception:  # noqa: BLE001 - the error being reported matters, not the hint
        return ""


def _drive_path(module: str, rest: str) -> bool:
    """``C:\\srv\\app.py`` split at the drive letter's colon."""
    return len(module) == 1 and module.isalpha() and rest[:1] in ("\\", "/")


def _is_file_path(spec: str) -> bool:
    module, _, rest = spec.partition(":")
    return _drive_path(module, rest) or module.endswith(".py") or "/" in module or "\\" in module


def _guess_attribute(path: str) -> str:
    """The application's name in a file, from its top-level names (the file is parsed, not run)."""
    try:
        with open(path, "rb") as handle:
            tree = ast.parse(handle.read(_HINT_READ_LIMIT))
    except (OSError, SyntaxError, ValueError):
        return "app"
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    for name in USUAL_NAMES:
        if name in names:
            return name
    for name in USUAL_FACTORIES:
        if name in names:
            return f"{name}()"
    return "app"


def file_spec_hint(spec: str) -> str:
    """For an application given as a file (``app.py``, ``src/app.py``): the spec to use instead."""
    path, _, attribute = spec.strip().partition(":")
    if _drive_path(path, attribute):
        drive, _, rest = spec.strip().partition(":")
        tail, _, attribute = rest.partition(":")
        path = f"{drive}:{tail}"
    path = os.path.normpath(path)
    directory = os.path.dirname(os.path.abspath(path))
    stem = os.path.basename(path)
    stem = stem[: -len(".py")] if stem.endswith(".py") else stem
    parts = [] if stem == "__init__" else [stem]
    # A module inside packages is imported by its dotted name, from above the top package.
    while os.path.isfile(os.path.join(directory, "__init__.py")):
        parts.insert(0, os.path.basename(directory))
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    if not parts or not all(part.isidentifier() for part in parts):
        return (
            f"{spec!r} is a file path, not a module: name the module and its application, "
            "e.g. myproject.wsgi:application"
        )
    if not attribute:
        attribute = _guess_attribute(path) if os.path.isfile(path) else "app"
    module = ".".join(parts)
    chdir = "" if directory == os.getcwd() else f"--chdir {shlex.quote(_display_path(directory))} "
    return f"{spec!r} is a file path, not a module: run greenserve {chdir}{module}:{attribute}"


def _attribute_hint(obj: Any, module_name: str, missing: list[str], found: int) -> str:
    """What the module does have that looks like the application asked for."""
    prefix = ".".join(missing[:found])
    names = [name for name in dir(obj) if not name.startswith("_")]
    guess = ""
    close = difflib.get_close_matches(missing[found], names, n=1)
    if close:
        guess = close[0]
    elif found == 0:
        callables = [name for name in USUAL_NAMES if name in names and callable(getattr(obj, name, None))]
        factories = [name for name in USUAL_FACTORIES if name in names and callable(getattr(obj, name, None))]
        guess = callables[0] if callables else (f"{factories[0]}()" if factories else "")
    if not guess:
        return ""
    attribute = f"{prefix}.{guess}" if prefix else guess
    default = " (the default when no ':attribute' is given)" if missing == [DEFAULT_ATTRIBUTE] else ""
    return f"{default}; it has {guess.removesuffix('()')!r}: try '{module_name}:{attribute}'"


def _elsewhere_hint(module_name: str) -> str:
    """A module that is not importable from here but sits in a subdirectory (``src/app.py``)."""
    top = module_name.split(".", maxsplit=1)[0]
    try:
        entries = sorted(os.scandir("."), key=lambda entry: entry.name)[:200]
    except OSError:
        return ""
    for entry in entries:
        if entry.name.startswith((".", "_")) or entry.name in ("node_modules", "site-packages"):
            continue
        try:
            if not entry.is_dir():
                continue
        except OSError:
            continue
        for candidate in (
            os.path.join(entry.name, f"{top}.py"),
            os.path.join(entry.name, top, "__init__.py"),
        ):
            if os.path.isfile(candidate):
                return f" (found {candidate}: add --chdir {shlex.quote(entry.name)})"
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


def parse_spec(spec: str) -> tuple[str, list[str], ast.Call | None]:
    """``spec`` -> (module, attribute path, factory call or None), importing nothing.

    Raises AppLoadError for what can be told wrong before importing: an empty
    spec, a file path given instead of a module (with the spec to use), an
    expression that is not a name or a call of literals.
    """
    module_name, expression = split_spec(spec)
    try:
        tree = ast.parse(expression, mode="eval").body
    except SyntaxError:
        raise AppLoadError(f"invalid application {spec!r}: {expression!r} is not a name or a call") from None
    call = tree if isinstance(tree, ast.Call) else None
    path = _dotted(call.func if call else tree, spec)
    if call is not None:
        _literal_args(call, spec)
    return module_name, path, call


def load_app(spec: str) -> Callable:
    """Import and return the application callable named by ``spec``."""
    module_name, path, call = parse_spec(spec)

    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AppLoadError(
                f"cannot import {module_name!r}: no module named {exc.name!r}"
                f"{_quietly(_unreadable_hint) or _quietly(_elsewhere_hint, module_name)}"
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
    for index, name in enumerate(path):
        try:
            obj = getattr(obj, name)
        except AttributeError:
            hint = _quietly(_attribute_hint, obj, module_name, path, index)
            raise AppLoadError(f"module {module_name!r} has no attribute {'.'.join(path)!r}{hint}") from None

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
