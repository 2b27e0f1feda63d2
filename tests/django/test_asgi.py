"""``manage.py greenserve --asgi``: Django's ASGI handler on the worker's asyncio loop thread."""

from __future__ import annotations

import pytest
import requests

TIMEOUT = 5  # a hang is the failure mode: do not wait long for it


@pytest.fixture
def asgi_server(manage_greenserve):
    # A short graceful timeout: a request stuck in the application must not hold up teardown.
    server = manage_greenserve("--asgi", "--noreload", "--graceful-timeout", "1")
    assert "greenserve.contrib.django.entry:asgi(static=True)" in server.wait_for("Ready:")
    return server


def test_asgi_admin_login_renders(asgi_server):
    response = requests.get(asgi_server.url + "/admin/login/", timeout=TIMEOUT)
    assert response.status_code == 200
    assert 'id="login-form"' in response.text


def test_asgi_static_files_in_debug(asgi_server):
    response = requests.get(asgi_server.url + "/static/admin/css/base.css", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/css")
