"""Fixtures for real WebSocket applications served by the real ``greenserve`` command.

The applications live in ``apps/`` (served with ``--chdir``), every server
binds port 0, and the clients are the libraries people use: python-socketio
(websocket transport only), simple-websocket and ``websockets``.

Flask-SocketIO (engineio) and greenserve's ``wsgi.websocket`` errors change
with gevent-websocket's presence, so the tests that care run twice: with it
installed, and with it hidden by a ``PYTHONPATH`` entry whose
``geventwebsocket/__init__.py`` raises ImportError (as if it were not
installed).
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import socketio
import websocket

from tests.conftest import GreenserveProcess

APPS = Path(__file__).resolve().parent / "apps"

#: engineio's WebSocket driver: gevent-websocket installed, or hidden (simple-websocket fallback).
WITH_GEVENT_WEBSOCKET = "gevent-websocket"
WITHOUT_GEVENT_WEBSOCKET = "simple-websocket"
VARIANTS = [WITH_GEVENT_WEBSOCKET, WITHOUT_GEVENT_WEBSOCKET]


@pytest.fixture(scope="session")
def hidden_gevent_websocket(tmp_path_factory) -> Path:
    """A directory for PYTHONPATH under which ``import geventwebsocket`` fails."""
    root = tmp_path_factory.mktemp("no-gevent-websocket")
    package = root / "geventwebsocket"
    package.mkdir()
    (package / "__init__.py").write_text('raise ImportError("gevent-websocket is hidden by the test")\n')
    return root


def variant_env(variant: str, hidden: Path) -> dict[str, str]:
    """The server's extra environment for ``variant``."""
    if variant == WITH_GEVENT_WEBSOCKET:
        return {}
    path = [str(hidden), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(path)}


def serve(
    factory: Callable[..., GreenserveProcess],
    *args: str,
    env: dict | None = None,
    ready: str = r"Ready: \d+ worker",
) -> GreenserveProcess:
    """``greenserve --chdir apps ARGS`` on 127.0.0.1:0 (a tests/conftest.py factory), every worker up."""
    argv = ("--chdir", str(APPS), "--graceful-timeout", "10", *args)
    return factory(*argv, cwd=APPS, env=env, ready=ready, timeout=30)


def ws_url(server: GreenserveProcess, path: str) -> str:
    host, port = server.address
    return f"ws://{host}:{port}{path}"


class ChatClient:
    """A python-socketio client (websocket transport only by default), recording what it receives.

    ``close_codes`` are the codes of the WebSocket close frames the server
    sent (recorded under websocket-client, which engineio's client uses).
    """

    def __init__(self, url: str, timeout: float = 10.0, transports: tuple[str, ...] = ("websocket",)) -> None:
        self.timeout = timeout
        self.events: list[tuple[str, Any]] = []
        self.close_codes: list[int] = []
        self.disconnect_reasons: list[str] = []
        self._cond = threading.Condition()
        owner = self

        class RecordingWebSocket(websocket.WebSocket):
            def recv_data_frame(self, control_frame: bool = False):
                opcode, frame = super().recv_data_frame(control_frame)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    data = frame.data
                    code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
                    with owner._cond:
                        owner.close_codes.append(code)
                        owner._cond.notify_all()
                return opcode, frame

        self.sio = socketio.Client(
            reconnection=False, websocket_extra_options={"class_": RecordingWebSocket, "timeout": timeout}
        )
        self.sio.on("*", self._record)
        self.sio.on("disconnect", self._disconnected)
        self.sio.connect(url, transports=list(transports), wait_timeout=timeout)
        self.welcome: dict[str, Any] = self.wait_for("welcome")

    def _record(self, event: str, data: Any = None) -> None:
        with self._cond:
            self.events.append((event, data))
            self._cond.notify_all()

    def _disconnected(self, reason: str = "") -> None:
        with self._cond:
            self.disconnect_reasons.append(str(reason))
            self._cond.notify_all()

    @property
    def sid(self) -> str:
        return str(self.welcome["sid"])

    def wait_until(self, predicate: Callable[[], Any], what: str, timeout: float | None = None) -> Any:
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {what} within the timeout; received {self.events}")
                self._cond.wait(min(left, 0.05))  # events notify; other predicates are polled

    def wait_for(self, event: str, match: Callable[[Any], bool] = lambda _: True) -> Any:
        """The data of the first ``event`` received (so far or soon) for which ``match`` is true."""

        def found() -> Any:
            for name, data in self.events:
                if name == event and match(data):
                    return (data,)
            return None

        return self.wait_until(found, f"{event!r} event")[0]

    def received(self, event: str) -> list[Any]:
        with self._cond:
            return [data for name, data in self.events if name == event]

    def call(self, event: str, data: Any) -> Any:
        """Emit with an acknowledgement, and return what the server's handler returned."""
        return self.sio.call(event, data, timeout=self.timeout)

    def close(self) -> None:
        if self.sio.connected:
            self.sio.disconnect()


@pytest.fixture
def chat_clients() -> Any:
    """Factory of :class:`ChatClient`; every client is disconnected at teardown."""
    clients: list[ChatClient] = []

    def connect(server: GreenserveProcess, **options: Any) -> ChatClient:
        client = ChatClient(server.url, **options)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()
