"""Every request in ``corpus/`` through both backends, whole, split at every offset, byte by byte.

A parser must produce the same events however the bytes arrive (ARCHITECTURE rule 1),
and both backends must produce the same events (except where a case says otherwise).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from greenserve.protocol.parser import new_parser

from .helpers import BACKENDS, feed_all, limits_from, normalise

CORPUS = Path(__file__).resolve().parent / "corpus"
NAMES = sorted(path.stem for path in CORPUS.glob("*.http"))
MODES = ("whole", "split", "bytewise")


def load(name: str) -> tuple[bytes, dict[str, Any]]:
    raw = (CORPUS / f"{name}.http").read_bytes()
    spec = json.loads((CORPUS / f"{name}.json").read_text(encoding="utf-8"))
    return raw, spec


def expectation(spec: dict[str, Any], backend: str) -> dict[str, Any]:
    merged = {"events": spec["events"], "after": spec.get("after")}
    merged.update(spec.get("backends", {}).get(backend, {}))
    return merged


def outcome(backend: str, spec: dict[str, Any], pieces: list[bytes]) -> dict[str, Any]:
    """What the parser did: its events, then what the upgrade action gave."""
    parser = new_parser(backend, limits_from(spec.get("limits")))
    feed_all(parser, pieces, spec.get("eof", False))
    result: dict[str, Any] = {"events": normalise(parser.events), "after": None}
    after = spec.get("after")
    if after is not None:
        parser.events.clear()
        if "resume" in after:
            parser.resume()
            result["after"] = {"resume": normalise(parser.events)}
        else:
            result["after"] = {"take_pending": parser.take_pending().decode("latin-1")}
    return result


def splittings(raw: bytes, mode: str) -> list[tuple[str, list[bytes]]]:
    if mode == "whole":
        return [("whole", [raw])]
    if mode == "split":
        return [(f"split at {i}", [raw[:i], raw[i:]]) for i in range(len(raw) + 1)]
    pieces = []
    for i in range(len(raw)):
        pieces += [raw[i : i + 1], b""]  # empty feeds must change nothing
    return [("byte by byte", pieces)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", NAMES)
def test_corpus(name: str, backend: str, mode: str) -> None:
    raw, spec = load(name)
    expected = expectation(spec, backend)
    failures = []
    for label, pieces in splittings(raw, mode):
        actual = outcome(backend, spec, pieces)
        if actual != expected:
            failures.append((label, actual))
    if failures:
        label, actual = failures[0]
        where = ", ".join(label for label, _ in failures[:12])
        pytest.fail(
            f"{name} [{backend}, {mode}]: {spec['description']}\n"
            f"wrong in {len(failures)} feeding(s): {where}{' ...' if len(failures) > 12 else ''}\n"
            f"expected: {json.dumps(expected)}\n"
            f"actual ({label}): {json.dumps(actual)}"
        )


def _ends_in_error(name: str) -> bool:
    events = load(name)[1]["events"]
    return bool(events) and isinstance(events[-1], dict) and "error" in events[-1]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", [name for name in NAMES if _ends_in_error(name)])
def test_dead_after_error(name: str, backend: str) -> None:
    """After an error event the parser ignores everything, even a valid request."""
    raw, spec = load(name)
    parser = new_parser(backend, limits_from(spec.get("limits")))
    feed_all(parser, [raw], spec.get("eof", False))
    events = normalise(parser.events)
    if not events or not isinstance(events[-1], dict) or "error" not in events[-1]:
        pytest.skip("no error from this backend: test_corpus reports that")
    count = len(parser.events)
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    parser.feed_eof()
    parser.resume()
    assert len(parser.events) == count


def test_every_case_has_both_files() -> None:
    https = {path.stem for path in CORPUS.glob("*.http")}
    jsons = {path.stem for path in CORPUS.glob("*.json")}
    assert https == jsons
    assert len(https) >= 100


def _generator():
    spec = importlib.util.spec_from_file_location("corpus_generate", CORPUS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_files_match_generator() -> None:
    """The files on disk are what generate.py writes (rerun it after editing a case)."""
    generator = _generator()
    stale = []
    for name, case in generator.CASES.items():
        data = dict(case)
        raw = data.pop("raw")
        http = CORPUS / f"{name}.http"
        js = CORPUS / f"{name}.json"
        if not http.exists() or http.read_bytes() != raw:
            stale.append(http.name)
        if not js.exists() or js.read_text(encoding="utf-8") != generator.render_json(data):
            stale.append(js.name)
    assert not stale, f"run python tests/protocol/corpus/generate.py: stale {stale}"


@pytest.mark.parametrize("name", NAMES)
def test_case_format(name: str) -> None:
    """The JSON follows the documented format (README.md)."""
    _, spec = load(name)
    assert set(spec) <= {"description", "events", "limits", "eof", "after", "backends"}
    assert isinstance(spec["description"], str) and spec["description"]
    for key in spec.get("backends", {}):
        assert key in BACKENDS
    events = [spec["events"], *(o.get("events", []) for o in spec.get("backends", {}).values())]
    for sequence in events:
        for event in sequence:
            assert event == "end" or (isinstance(event, dict) and len(event) == 1), event
            if isinstance(event, dict) and "error" in event:
                assert event is sequence[-1], "an error is always the last event"
