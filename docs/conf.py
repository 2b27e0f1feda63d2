"""Sphinx configuration: the pages are Markdown, read by myst-parser.

Build (warnings are errors, as in CI)::

    pip install -e '.[docs]'
    sphinx-build -W -b html docs docs/_build/html
"""

from __future__ import annotations

import re
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
# Read the version without importing the package (the docs build needs no gevent).
try:
    _INIT = (_ROOT / "greenserve" / "__init__.py").read_text(encoding="utf-8")
except OSError:
    _INIT = ""
_VERSION = re.search(r'^__version__ = "([^"]+)"', _INIT, re.MULTILINE)

project = "greenserve"
author = "greenserve developers"
copyright = "greenserve developers"
release = _VERSION.group(1) if _VERSION else "unknown"
version = release

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist"]
# Anchors for ## and ### headings, so pages can link to [a setting](settings.md#bind).
myst_heading_anchors = 3

html_theme = "alabaster"
html_title = f"greenserve {release}"
html_static_path = ["_static"]

#: Pages another part of the project produces (docs/benchmarks.md comes from the
#: benchmark runs). They join the table of contents when they exist, so the build
#: passes with -W both before and after they are written.
OPTIONAL_PAGES = ("benchmarks",)
_OPTIONAL_MARKER = "<!-- optional pages -->"


def _add_optional_pages(app, docname, source):
    if docname != root_doc or _OPTIONAL_MARKER not in source[0]:
        return
    present = [page for page in OPTIONAL_PAGES if (Path(app.srcdir) / f"{page}.md").exists()]
    toctree = ""
    if present:
        toctree = "```{toctree}\n:maxdepth: 2\n:caption: Performance\n\n" + "\n".join(present) + "\n```\n"
    source[0] = source[0].replace(_OPTIONAL_MARKER, toctree)


def setup(app):
    app.connect("source-read", _add_optional_pages)
    return {"parallel_read_safe": True}
