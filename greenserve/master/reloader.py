"""``--reload``: notice changed Python files by polling their modification times.

The master runs this (it never imports the application, so it cannot watch
``sys.modules``): it watches every ``*.py`` file below the application's
directories plus ``--reload-extra-file`` paths. Polling needs no extra
package and behaves the same on every platform.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

_SKIP_DIRS = frozenset(
    (
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        "env",
        ".tox",
        ".nox",
        "node_modules",
        "__pycache__",
        "site-packages",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "build",
        "dist",
    )
)
#: A tree bigger than this is not scanned in full (point --chdir at the app).
MAX_FILES = 20_000


def _python_files(roots: Iterable[str]) -> Iterator[str]:
    seen = 0
    for root in roots:
        for directory, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".")]
            for name in files:
                if name.endswith(".py"):
                    seen += 1
                    if seen > MAX_FILES:
                        return
                    yield os.path.join(directory, name)


class Reloader:
    """Call :meth:`changed` periodically; it returns the paths that changed."""

    def __init__(self, roots: Iterable[str], extra_files: Iterable[str] = ()) -> None:
        self.roots = [os.path.abspath(root) for root in roots]
        self.extra_files = [os.path.abspath(path) for path in extra_files]
        self._mtimes = self._scan()

    def _scan(self) -> dict[str, float]:
        mtimes: dict[str, float] = {}
        for path in [*_python_files(self.roots), *self.extra_files]:
            try:
                mtimes[path] = os.stat(path).st_mtime
            except OSError:
                mtimes[path] = 0.0
        return mtimes

    def changed(self) -> list[str]:
        current = self._scan()
        changed = [path for path, mtime in current.items() if self._mtimes.get(path) != mtime]
        changed += [path for path in self._mtimes if path not in current]
        self._mtimes = current
        return sorted(changed)
