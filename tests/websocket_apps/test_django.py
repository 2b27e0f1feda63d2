"""A Django view that serves a WebSocket through ``request.environ["wsgi.websocket"]``.

The project is tests/django's (``startproject``, migrated, a superuser),
served by ``python manage.py greenserve``. The view runs the whole
middleware stack first (sessions, authentication, CSRF for GET is a no-op),
so it knows the logged-in user, and it uses the ORM between messages; the
HttpResponse it returns at the end is not sent (the connection is no longer
HTTP), but its ``close()`` still runs Django's end-of-request work.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.django.conftest import (  # the project and command fixtures of tests/django
    ADMIN_PASSWORD,
    ADMIN_USER,
    django_project,
    django_template,
    manage_greenserve,
)

__all__ = ["django_project", "django_template", "manage_greenserve"]

VIEW = '''

from django.contrib.auth.models import User
from django.http import HttpResponse, HttpResponseBadRequest


def ws_echo(request):
    """Echo over a WebSocket; "whoami" and "users" answer from the session and the ORM."""
    ws = request.environ.get("wsgi.websocket")
    if ws is None:
        return HttpResponseBadRequest("WebSocket endpoint")
    while (message := ws.receive()) is not None:
        if message == "whoami":
            ws.send(request.user.get_username() or "anonymous")
        elif message == "users":
            ws.send(str(User.objects.count()))
        else:
            ws.send(message)
    return HttpResponse()  # not sent: the connection was a WebSocket
'''

URL = """
urlpatterns += [path("ws/echo/", views.ws_echo)]
"""


@pytest.fixture
def project(django_project: Path) -> Path:
    views = django_project / "demo" / "views.py"
    views.write_text(views.read_text() + VIEW)
    urls = django_project / "mysite" / "urls.py"
    urls.write_text(urls.read_text() + URL)
    return django_project


def log_in(server) -> str:
    """Log the superuser in through the admin form; the session cookie."""
    with requests.Session() as session:
        page = session.get(server.url + "/admin/login/", timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token, page.text[:2000]
        response = session.post(
            server.url + "/admin/login/?next=/admin/",
            data={"csrfmiddlewaretoken": token.group(1), "username": ADMIN_USER, "password": ADMIN_PASSWORD},
            timeout=10,
        )
        assert response.status_code == 200, response.text[:2000]
        return session.cookies["sessionid"]


def test_django_view_websocket_with_session_and_orm(project, manage_greenserve):
    server = manage_greenserve("--noreload")
    host, port = server.address
    url = f"ws://{host}:{port}/ws/echo/"
    options = {"open_timeout": 5, "close_timeout": 5, "proxy": None, "ping_interval": None}
    with connect(url, **options) as conn:
        conn.send("hello django")
        assert conn.recv(timeout=5) == "hello django"
        conn.send("whoami")
        assert conn.recv(timeout=5) == "anonymous"
    session = log_in(server)
    with connect(url, additional_headers={"Cookie": f"sessionid={session}"}, **options) as conn:
        conn.send("whoami")
        assert conn.recv(timeout=5) == ADMIN_USER
        conn.send("users")
        assert conn.recv(timeout=5) == "1"
        conn.send(b"\x00binary")
        assert conn.recv(timeout=5) == b"\x00binary"
    # Plain HTTP to the same view gets the view's 400, and the rest of the site still works.
    response = requests.get(server.url + "/ws/echo/", timeout=10)
    assert response.status_code == 400
    assert requests.get(server.url + "/hello/", timeout=10).text == "hello v1"
    assert "Traceback" not in server.log


def test_django_view_can_refuse_the_upgrade(project, manage_greenserve):
    """A view that answers without touching the WebSocket declines it (here: 404 for an unknown path)."""
    server = manage_greenserve("--noreload")
    host, port = server.address
    with pytest.raises(InvalidStatus) as info:
        connect(f"ws://{host}:{port}/nowhere/", open_timeout=5, proxy=None)
    assert info.value.response.status_code == 404
