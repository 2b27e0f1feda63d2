"""``--interface`` detection and forcing, and ``--loop`` selection."""

from __future__ import annotations

import pytest
import requests


@pytest.mark.parametrize(
    ("app", "path", "body"),
    [
        ("iface_apps:asgi3", "/", "asgi3"),
        ("iface_apps:ASGI2", "/", "asgi2"),
        ("iface_apps:asgi3_instance", "/", "asgi3"),
        ("fastapi_app:app", "/items/5", '{"item_id":5,"q":null,"limit":10}'),
        ("starlette_app:app", "/", "home"),
    ],
    ids=["async-function", "asgi2-class", "async-call-instance", "fastapi", "starlette"],
)
def test_auto_detects_asgi(serve, app, path, body):
    server = serve("--single-process", "--interface", "auto", app)
    response = requests.get(server.url + path, timeout=5)
    assert (response.status_code, response.text) == (200, body)
    assert f"Serving {app} as ASGI" in server.log


def test_auto_keeps_wsgi_as_wsgi(serve):
    server = serve("--single-process", "iface_apps:wsgi")
    assert requests.get(server.url + "/", timeout=5).text == "wsgi"
    assert "as ASGI" not in server.log
    assert "asyncio" not in server.log and "uvloop" not in server.log


@pytest.mark.parametrize("app", ["iface_apps:asgi3", "fastapi_app:app"])
def test_forced_wsgi_on_an_asgi_app_gives_500_without_crashing(serve, app):
    server = serve("--single-process", "--interface", "wsgi", app)
    start = len(server.lines)
    for _ in range(3):
        response = requests.get(server.url + "/", timeout=5)
        assert response.status_code == 500
    assert server.proc.poll() is None
    assert "as ASGI" not in server.log
    server.wait_for("error handling request", start=start)


def test_forced_wsgi_with_workers_does_not_respawn(serve):
    server = serve("-w", "1", "--interface", "wsgi", "iface_apps:asgi3")
    for _ in range(5):
        assert requests.get(server.url + "/", timeout=5).status_code == 500
    server.wait_for("Booting worker")  # the master's line may come after its worker's
    assert server.log.count("Booting worker") == 1
    assert "died" not in server.log


@pytest.mark.parametrize(("app", "body"), [("iface_apps:asgi3", "asgi3"), ("iface_apps:ASGI2", "asgi2")])
def test_forced_asgi(serve, app, body):
    server = serve("--single-process", "--interface", "asgi", app)
    assert requests.get(server.url + "/", timeout=5).text == body


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_loop_choice(serve, loop):
    server = serve("--single-process", "--loop", loop, "raw_app:app")
    assert f"as ASGI on a {loop} loop thread" in server.log
    response = requests.get(server.url + "/sleep?s=0.05", timeout=5)
    assert (response.status_code, response.text) == (200, "slept")
    # Streaming and bodies work on either loop.
    payload = b"x" * 300_000
    assert requests.post(server.url + "/echo", data=payload, timeout=5).content == payload
