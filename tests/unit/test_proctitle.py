"""Process titles: their text, cheap updates, and a system without setproctitle."""

from __future__ import annotations

import builtins
import logging

import pytest

from greenserve import proctitle


@pytest.fixture
def shown(monkeypatch) -> list[str]:
    """The titles set, instead of changing this process's own."""
    titles: list[str] = []
    monkeypatch.setattr(proctitle, "_setter", titles.append)
    monkeypatch.setattr(proctitle, "_looked_up", True)
    monkeypatch.setattr(proctitle, "worker_title", None)
    return titles


def test_titles(shown):
    proctitle.set_title(proctitle.master_title("app:app"))
    title = proctitle.start_worker(proctitle.worker_title_base("app:app"), 3, 1000)
    assert title is proctitle.worker_title
    title.update(0)
    title.update(2)
    title.update(1, stopping=True)
    title.update(0, stopping=True)
    assert shown == [
        "greenserve: master [app:app]",
        "greenserve: worker [app:app] gen 3 booting",
        "greenserve: worker [app:app] gen 3 idle",
        "greenserve: worker [app:app] gen 3 busy 2/1000",
        "greenserve: worker [app:app] gen 3 stopping busy 1/1000",
        "greenserve: worker [app:app] gen 3 stopping",
    ]


def test_a_title_is_written_only_when_it_changes(shown):
    title = proctitle.WorkerTitle("greenserve: worker [app]", 1, 10)
    for busy in (0, 0, 0, 4, 4, 0):
        title.update(busy)
    assert shown == [
        "greenserve: worker [app] gen 1 idle",
        "greenserve: worker [app] gen 1 busy 4/10",
        "greenserve: worker [app] gen 1 idle",
    ]


def test_without_setproctitle_one_debug_line_and_no_titles(monkeypatch, caplog):
    real_import = builtins.__import__

    def no_setproctitle(name, *args, **kwargs):
        if name == "setproctitle":
            raise ImportError("No module named 'setproctitle'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_setproctitle)
    monkeypatch.setattr(proctitle, "_setter", None)
    monkeypatch.setattr(proctitle, "_looked_up", False)
    monkeypatch.setattr(proctitle, "worker_title", None)
    logger = logging.getLogger("greenserve.error")
    monkeypatch.setattr(logger, "propagate", True)
    with caplog.at_level(logging.DEBUG, logger="greenserve.error"):
        proctitle.set_title("greenserve: master [x]")
        assert proctitle.start_worker("greenserve: worker [x]", 1, 10) is None
        proctitle.set_title("again")
    debug = [r for r in caplog.records if "setproctitle" in r.getMessage()]
    assert len(debug) == 1 and debug[0].levelno == logging.DEBUG
