"""Unit tests for greenserve.importer: application specs -> callables."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from greenserve import importer
from greenserve.errors import EXIT_APP_LOAD_ERROR, AppLoadError
from greenserve.importer import DEFAULT_ATTRIBUTE, load_app, split_spec


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., str]]:
    """Write a module (or package) into a fresh sys.path entry; forget it afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)

    def make(name: str, source: str) -> str:
        parts = name.split(".")
        directory = tmp_path
        for package in parts[:-1]:
            directory = directory / package
            directory.mkdir(exist_ok=True)
            init = directory / "__init__.py"
            if not init.exists():
                init.write_text("", encoding="utf-8")
        path = directory / f"{parts[-1]}.py"
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        return str(path)

    yield make
    for name in set(sys.modules) - before:
        del sys.modules[name]


WSGI = """
def application(environ, start_response):
    start_response("200 OK", [])
    return [b"default"]

def app(environ, start_response):
    start_response("200 OK", [])
    return [b"app"]

class Holder:
    def inner(self, environ, start_response):
        return [b"inner"]

holder = Holder()
not_callable = 42

def create_app(*args, **kwargs):
    def configured(environ, start_response):
        return [repr((args, kwargs)).encode()]
    return configured

def failing_factory():
    raise RuntimeError("factory exploded")

def factory_of_nothing():
    return None
"""


def call(app: Callable) -> bytes:
    return b"".join(app({}, lambda status, headers: None))


# -- split_spec ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "module", "expression"),
    [
        ("pkg.mod:app", "pkg.mod", "app"),
        ("pkg.mod", "pkg.mod", DEFAULT_ATTRIBUTE),
        ("  mod:app  ", "mod", "app"),
        ("mod: app", "mod", "app"),
        ("mod:create_app('x', debug=True)", "mod", "create_app('x', debug=True)"),
        ("mod:a.b.c", "mod", "a.b.c"),
        ("mod:", "mod", ""),
    ],
)
def test_split_spec(spec: str, module: str, expression: str) -> None:
    assert split_spec(spec) == (module, expression)


def test_default_attribute() -> None:
    assert DEFAULT_ATTRIBUTE == "application"


@pytest.mark.parametrize("spec", ["", "   ", ":app"])
def test_split_spec_invalid(spec: str) -> None:
    with pytest.raises(AppLoadError) as info:
        split_spec(spec)
    assert info.value.exit_code == EXIT_APP_LOAD_ERROR


# -- load_app: success ------------------------------------------------------------------------


def test_module_and_attribute(modules) -> None:
    modules("gs_app_attr", WSGI)
    assert call(load_app("gs_app_attr:app")) == b"app"


def test_default_attribute_is_application(modules) -> None:
    modules("gs_app_default", WSGI)
    assert call(load_app("gs_app_default")) == b"default"


def test_dotted_attribute(modules) -> None:
    modules("gs_app_dotted", WSGI)
    assert call(load_app("gs_app_dotted:holder.inner")) == b"inner"


def test_module_in_a_package(modules) -> None:
    modules("gs_pkg_one.sub.wsgi", WSGI)
    assert call(load_app("gs_pkg_one.sub.wsgi:app")) == b"app"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("create_app()", ((), {})),
        ("create_app('prod')", (("prod",), {})),
        (
            "create_app('x', 2, debug=True, opts={'a': [1, 2]}, t=(1,), n=None, neg=-1.5)",
            (("x", 2), {"debug": True, "opts": {"a": [1, 2]}, "t": (1,), "n": None, "neg": -1.5}),
        ),
        ("create_app(b'bytes')", ((b"bytes",), {})),
    ],
)
def test_factory_with_literal_arguments(modules, expression: str, expected: tuple) -> None:
    modules("gs_app_factory", WSGI)
    assert call(load_app(f"gs_app_factory:{expression}")) == repr(expected).encode()


def test_any_callable_object_is_accepted(modules) -> None:
    modules(
        "gs_app_class",
        "class App:\n    def __call__(self, environ, start_response):\n        return [b'x']\n"
        "application = App()\n",
    )
    assert call(load_app("gs_app_class")) == b"x"


# -- load_app: failures ----------------------------------------------------------------------


def load_error(spec: str) -> str:
    with pytest.raises(AppLoadError) as info:
        load_app(spec)
    assert info.value.exit_code == EXIT_APP_LOAD_ERROR
    assert "\n" not in str(info.value)
    return str(info.value)


def test_missing_module(modules) -> None:
    assert (
        load_error("gs_no_such_module:app")
        == "cannot import 'gs_no_such_module': no module named 'gs_no_such_module'"
    )


def test_missing_submodule_and_package(modules) -> None:
    modules("gs_pkg_two.present", WSGI)
    assert "no module named 'gs_pkg_two.absent'" in load_error("gs_pkg_two.absent:app")
    assert "no module named 'gs_no_pkg'" in load_error("gs_no_pkg.sub.mod:app")


def test_module_whose_import_fails_names_the_failing_import(modules) -> None:
    path = modules("gs_broken_import", "import os\n\nimport gs_dependency_that_is_missing\n")
    message = load_error("gs_broken_import:app")
    assert message.startswith("cannot import 'gs_broken_import': ModuleNotFoundError")
    assert "gs_dependency_that_is_missing" in message
    assert "no module named 'gs_broken_import'" not in message
    assert f"{Path(path).name}:3)" in message


def test_package_whose_import_fails(modules) -> None:
    modules("gs_pkg_three.wsgi", WSGI)
    init = Path(modules("gs_pkg_three.helper", "")).parent / "__init__.py"
    init.write_text("from gs_pkg_three import missing_sibling\n", encoding="utf-8")
    message = load_error("gs_pkg_three.wsgi:app")
    assert "ImportError" in message or "ModuleNotFoundError" in message
    assert "missing_sibling" in message
    assert "__init__.py:1)" in message


@pytest.mark.parametrize(
    ("source", "error", "line"),
    [
        ("x = 1\nraise RuntimeError('boom at import')\n", "RuntimeError: boom at import", 2),
        ("\n\nx = 1 / 0\n", "ZeroDivisionError", 3),
        ("import sys\nsys.exit(3)\n", "SystemExit: 3", 2),
    ],
)
def test_module_that_raises_on_import(modules, source: str, error: str, line: int) -> None:
    path = modules("gs_raises_on_import", source)
    message = load_error("gs_raises_on_import:app")
    assert f"cannot import 'gs_raises_on_import': {error}" in message
    assert f"{Path(path).name}:{line})" in message


def test_module_with_syntax_error(modules) -> None:
    modules("gs_syntax_error", "def broken(:\n    pass\n")
    message = load_error("gs_syntax_error:app")
    assert "SyntaxError" in message


def test_missing_attribute(modules) -> None:
    modules("gs_app_attrs", WSGI)
    assert load_error("gs_app_attrs:nope").startswith("module 'gs_app_attrs' has no attribute 'nope'")
    assert "no attribute 'holder.missing'" in load_error("gs_app_attrs:holder.missing")


def test_default_attribute_missing(modules) -> None:
    modules("gs_app_no_default", "app = lambda environ, start_response: []\n")
    assert "no attribute 'application'" in load_error("gs_app_no_default")


def test_not_callable(modules) -> None:
    modules("gs_app_nc", WSGI)
    assert (
        load_error("gs_app_nc:not_callable")
        == "'gs_app_nc:not_callable' is a int, not a callable application"
    )


def test_factory_returning_non_callable(modules) -> None:
    modules("gs_app_fnc", WSGI)
    assert "not a callable application" in load_error("gs_app_fnc:factory_of_nothing()")


def test_failing_factory(modules) -> None:
    path = modules("gs_app_ff", WSGI)
    message = load_error("gs_app_ff:failing_factory()")
    assert (
        "application factory 'gs_app_ff:failing_factory()' failed: RuntimeError: factory exploded" in message
    )
    assert f"{Path(path).name}:" in message


@pytest.mark.parametrize(
    "expression",
    [
        "create_app(os.getcwd())",
        "create_app(x)",
        "create_app(1 + 1)",
        "create_app(key=open('/etc/passwd'))",
        "create_app([i for i in range(3)])",
        "create_app(*['a'])",
    ],
)
def test_non_literal_arguments_are_refused(modules, expression: str) -> None:
    modules("gs_app_nl", WSGI + "\nCALLED = []\n")
    message = load_error(f"gs_app_nl:{expression}")
    assert "invalid application" in message


def test_double_star_kwargs_refused(modules) -> None:
    modules("gs_app_kw", WSGI)
    assert "**kwargs" in load_error("gs_app_kw:create_app(**{'a': 1})")


@pytest.mark.parametrize(
    "expression",
    [
        "create_app()()",
        "holder[0]",
        "'string'",
        "lambda: app",
        "app if True else app",
        "1",
        "__import__('os').getcwd()",
    ],
)
def test_expression_must_be_a_name_or_a_call(modules, expression: str) -> None:
    modules("gs_app_expr", WSGI)
    assert "invalid application" in load_error(f"gs_app_expr:{expression}")


@pytest.mark.parametrize("expression", ["app(", "a b", "", "app)"])
def test_expression_syntax_errors(modules, expression: str) -> None:
    modules("gs_app_syntax", WSGI)
    assert "invalid application" in load_error(f"gs_app_syntax:{expression}")


def test_invalid_expression_does_not_import_the_module(modules) -> None:
    modules("gs_app_side_effect", "import sys\nsys.modules['gs_side_effect_marker'] = True\n")
    load_error("gs_app_side_effect:create_app()()")
    assert "gs_side_effect_marker" not in sys.modules


# -- prepare_path, detect_interface ------------------------------------------------------------


def test_prepare_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    first = tmp_path / "first"
    second = tmp_path / "second"
    importer.prepare_path(pythonpath=[str(first), str(second)])
    assert sys.path[:3] == [str(tmp_path), str(first), str(second)]


def test_prepare_path_chdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "app_dir"
    target.mkdir()
    importer.prepare_path(chdir=str(target))
    assert Path.cwd() == target
    assert sys.path[0] == str(target)
    with pytest.raises(AppLoadError, match="--chdir"):
        importer.prepare_path(chdir=str(tmp_path / "missing"))


def test_detect_interface() -> None:
    def wsgi(environ, start_response):
        return []

    async def asgi3(scope, receive, send):
        pass

    class Asgi3Instance:
        async def __call__(self, scope, receive, send):
            pass

    class Asgi2:
        def __init__(self, scope):
            self.scope = scope

        async def __call__(self, receive, send):
            pass

    class WsgiClass:
        def __init__(self, environ, start_response):
            pass

    detect = importer.detect_interface
    assert detect(wsgi) == "wsgi"
    assert detect(asgi3) == "asgi3"
    assert detect(Asgi3Instance()) == "asgi3"
    assert detect(Asgi2) == "asgi2"
    assert detect(WsgiClass) == "wsgi"
    assert detect(print) == "wsgi"


# -- errors name the user's own code -------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "line", "error"),
    [
        # Raised inside the standard library: <frozen os>, json/decoder.py.
        ("import os\n\nSECRET = os.environ['GS_SURELY_UNSET_VARIABLE']\n", 3, "KeyError"),
        ("import json\nx = 1\nCONF = json.loads('{not json')\n", 3, "JSONDecodeError"),
    ],
)
def test_error_raised_in_the_standard_library_names_the_users_line(
    modules, source: str, line: int, error: str
) -> None:
    path = modules("gs_stdlib_raises", source)
    message = load_error("gs_stdlib_raises:app")
    assert error in message
    assert message.endswith(f"{os.sep}{Path(path).name}:{line})"), message
    assert "frozen" not in message
    assert "decoder.py" not in message


def test_error_raised_in_an_installed_package_names_the_users_line(
    modules, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A library that raises (Django's ImproperlyConfigured, say) is not where the user looks."""
    library = tmp_path / "site-packages"
    library.mkdir()
    (library / "gs_fake_library.py").write_text("def configure():\n    raise LookupError('no settings')\n")
    monkeypatch.syspath_prepend(str(library))
    own, _ = importer._library_dirs()
    monkeypatch.setattr(importer, "_library_dirs", lambda: (own, (str(library) + os.sep,)))
    path = modules("gs_uses_library", "import gs_fake_library\n\ngs_fake_library.configure()\n")
    message = load_error("gs_uses_library:app")
    assert "LookupError: no settings" in message
    assert message.endswith(f"{os.sep}{Path(path).name}:3)"), message
    sys.modules.pop("gs_fake_library", None)


def test_error_in_an_installed_application_still_names_a_line(
    modules, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the application itself is installed, its own frames are the best there is."""
    path = modules("gs_installed_app", "x = 1\nraise ValueError('broken config')\n")
    own, _ = importer._library_dirs()
    installed = (str(Path(path).parent) + os.sep,)
    monkeypatch.setattr(importer, "_library_dirs", lambda: (own, installed))
    assert load_error("gs_installed_app:app").endswith(f"{os.sep}{Path(path).name}:2)")


# -- hints for the usual first-hour mistakes -------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with ``app.py``, ``src/app.py`` and ``src/pkg/wsgi.py`` in a package."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app.py").write_text("from flask import Flask\napp = Flask(__name__)\n")
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "app.py").write_text("def create_app():\n    return None\n")
    (tmp_path / "src" / "pkg" / "__init__.py").write_text("")
    (tmp_path / "src" / "pkg" / "wsgi.py").write_text("application = object()\n")
    (tmp_path / "my dir").mkdir()
    (tmp_path / "my dir" / "main.py").write_text("api: object = object()\n")
    return tmp_path


@pytest.mark.parametrize(
    ("spec", "hint"),
    [
        ("app.py", "run greenserve app:app"),
        ("./app.py", "run greenserve app:app"),
        ("app.py:server", "run greenserve app:server"),
        ("src/app.py", "run greenserve --chdir src app:create_app()"),
        ("src/pkg/wsgi.py", "run greenserve --chdir src pkg.wsgi:application"),
        ("src/pkg/__init__.py", "run greenserve --chdir src pkg:app"),
        ("my dir/main.py", "run greenserve --chdir 'my dir' main:api"),
        ("missing/app.py", "run greenserve --chdir missing app:app"),
    ],
)
def test_file_path_given_as_the_application(project: Path, spec: str, hint: str) -> None:
    for check in (split_spec, load_app, importer.parse_spec):
        with pytest.raises(AppLoadError) as info:
            check(spec)
        assert str(info.value) == f"{spec!r} is a file path, not a module: {hint}"


def test_file_path_hint_does_not_run_the_file(project: Path) -> None:
    (project / "side_effect.py").write_text("open('ran', 'w').close()\napplication = 1\n")
    assert "side_effect:application" in importer.file_spec_hint("side_effect.py")
    assert not (project / "ran").exists()


def test_windows_file_path(project: Path) -> None:
    assert importer._is_file_path("C:\\srv\\app.py")
    assert "is a file path" in importer.file_spec_hint("C:\\srv\\app.py")


@pytest.mark.parametrize(
    ("source", "spec", "hint"),
    [
        # A Flask or FastAPI module whose object is `app`: `greenserve module` looks for `application`.
        (
            "def app(environ, start_response):\n    return []\n",
            "gs_hint_app",
            "(the default when no ':attribute' is given); it has 'app': try 'gs_hint_app:app'",
        ),
        ("def create_app():\n    return None\n", "gs_hint_factory", "try 'gs_hint_factory:create_app()'"),
        (
            "def application(e, s):\n    return []\n",
            "gs_hint_typo:aplication",
            "try 'gs_hint_typo:application'",
        ),
        ("class holder:\n    app = 1\n", "gs_hint_dotted:holder.ap", "try 'gs_hint_dotted:holder.app'"),
    ],
)
def test_missing_attribute_hints_at_what_the_module_has(modules, source: str, spec: str, hint: str) -> None:
    modules(spec.partition(":")[0], source)
    message = load_error(spec)
    assert "has no attribute" in message
    assert message.endswith(hint), message


def test_missing_attribute_without_anything_similar(modules) -> None:
    modules("gs_hint_nothing", "x = 1\n")
    assert load_error("gs_hint_nothing") == "module 'gs_hint_nothing' has no attribute 'application'"


def test_module_in_a_subdirectory_hints_at_chdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "gs_elsewhere.py").write_text("app = 1\n")
    assert load_error("gs_elsewhere:app") == (
        "cannot import 'gs_elsewhere': no module named 'gs_elsewhere' "
        "(found src/gs_elsewhere.py: add --chdir src)"
    )


def test_error_location_without_sysconfig(modules, monkeypatch: pytest.MonkeyPatch) -> None:
    """After --user, the interpreter's _sysconfigdata may be unreadable: the report must still come."""

    def unreadable() -> dict[str, str]:
        raise ModuleNotFoundError("No module named '_sysconfigdata__linux_x86_64-linux-gnu'")

    monkeypatch.setattr(importer.sysconfig, "get_paths", unreadable)
    path = modules("gs_no_sysconfig", "import os\n\nos.environ['GS_SURELY_UNSET_VARIABLE']\n")
    assert load_error("gs_no_sysconfig:app").endswith(f"{os.sep}{Path(path).name}:3)")


def test_a_failing_hint_leaves_the_error_intact(modules) -> None:
    modules(
        "gs_odd_module",
        "import sys, types\n"
        "class _Odd(types.ModuleType):\n"
        "    def __dir__(self):\n"
        "        raise RuntimeError('no listing')\n"
        "sys.modules[__name__].__class__ = _Odd\n",
    )
    assert load_error("gs_odd_module:app") == "module 'gs_odd_module' has no attribute 'app'"
