"""``--reload`` is the default in DEBUG (as runserver's autoreloader); ``--noreload`` turns it off."""

from __future__ import annotations

import time

import requests

from tests.conftest import wait_until

TIMEOUT = 10


def _hello(server) -> str:
    return requests.get(server.url + "/hello/", timeout=TIMEOUT, headers={"Connection": "close"}).text


def _edit_views(project, version: str) -> None:
    views = project / "demo" / "views.py"
    views.write_text(views.read_text().replace('VERSION = "v1"', f'VERSION = "{version}"'))


def test_reload_is_the_default_in_debug(manage_greenserve, django_project):
    server = manage_greenserve()
    assert f"Reloading on changes below {django_project}" in server.log
    assert _hello(server) == "hello v1"
    _edit_views(django_project, "v2")
    assert wait_until(lambda: _hello(server) == "hello v2", timeout=20, interval=0.2), server.log
    # The server kept its address.
    assert len(set(server.urls)) == 1


def test_noreload(manage_greenserve, django_project):
    server = manage_greenserve("--noreload")
    assert "Reloading on changes" not in server.log
    assert _hello(server) == "hello v1"
    _edit_views(django_project, "v2")
    time.sleep(2.5)  # the reloader, when on, polls every second
    assert _hello(server) == "hello v1"
