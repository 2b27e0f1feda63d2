"""The documentation stays true to the code.

- ``docs/settings.md`` is exactly what ``greenserve/config.py`` generates;
- every command-line flag of ``greenserve --help`` is documented somewhere in docs/;
- every access log atom is documented in docs/logging.md;
- the README's test command is the one CI runs.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest

from greenserve.cli import build_parser
from greenserve.config import settings_markdown

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REGENERATE = "python -m greenserve.config > docs/settings.md"


def _docs_text() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(DOCS.glob("*.md")))


def test_settings_reference_is_current():
    path = DOCS / "settings.md"
    expected = settings_markdown()
    actual = path.read_text(encoding="utf-8") if path.exists() else ""
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                actual.splitlines(keepends=True),
                expected.splitlines(keepends=True),
                "docs/settings.md",
                "settings_markdown()",
                n=1,
            )
        )
        pytest.fail(
            f"docs/settings.md is out of date with greenserve/config.py.\n"
            f"Regenerate it from the repository root with:\n\n    {REGENERATE}\n\n{diff[:4000]}"
        )


def _flags() -> list[str]:
    flags = set()
    for action in build_parser()._actions:
        flags.update(action.option_strings)
    return sorted(flags)


def test_every_command_line_flag_is_documented():
    text = _docs_text()
    missing = [
        flag for flag in _flags() if not re.search(r"(?<![\w-])" + re.escape(flag) + r"(?![\w-])", text)
    ]
    assert not missing, (
        f"flags of `greenserve --help` found nowhere in docs/*.md: {missing}. Settings are documented "
        f"by regenerating docs/settings.md ({REGENERATE}); other options belong in docs/quickstart.md."
    )


def test_every_access_log_atom_is_documented():
    from greenserve.worker import accesslog

    text = (DOCS / "logging.md").read_text(encoding="utf-8")
    atoms = [f"%({name})s" for name in accesslog._ATOMS]
    atoms += ["%({name}i)s", "%({name}o)s", "%({name}e)s"]
    missing = [atom for atom in atoms if f"`{atom}`" not in text]
    assert not missing, f"access log atoms not documented in docs/logging.md: {missing}"


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"^(python3 -m venv .+ python -m pytest.*)$", readme, re.MULTILINE)
    assert commands, "README.md should show the command that runs the tests"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert commands[0] in ci, ".ci/run must run the README's test command verbatim"


def test_relative_links_point_at_existing_files():
    """README.md and docs/*.md link only to files that exist (anchors are checked by the Sphinx build)."""
    link = re.compile(r"\]\(([^)\s]+)\)")
    # Written by the benchmark runs (see OPTIONAL_PAGES in docs/conf.py); may not exist yet.
    optional = {DOCS / "benchmarks.md"}
    missing = []
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        for target in link.findall(page.read_text(encoding="utf-8")):
            path = target.split("#", 1)[0]
            if not path or "://" in path or path.startswith("mailto:"):
                continue
            resolved = (page.parent / path).resolve()
            if not resolved.exists() and resolved not in optional:
                missing.append(f"{page.relative_to(ROOT)}: {target}")
    assert not missing, f"links to files that do not exist: {missing}"
