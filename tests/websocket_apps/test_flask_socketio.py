"""Flask-SocketIO on greenserve, driven by the python-socketio client over WebSockets only.

Most tests run twice: with gevent-websocket installed, engineio serves the
WebSocket through greenserve's ``environ["wsgi.websocket"]``; without it,
engineio falls back to simple-websocket, which speaks WebSocket itself on
``environ["gunicorn.socket"]``. No worker class, no extra setting.
"""

from __future__ import annotations

import signal
import time
import uuid

import pytest
import requests

from tests.websocket_apps.conftest import (
    VARIANTS,
    WITH_GEVENT_WEBSOCKET,
    WITHOUT_GEVENT_WEBSOCKET,
    serve,
    variant_env,
)

#: The environ key engineio used, per variant.
EXPECTED_KEY = {WITH_GEVENT_WEBSOCKET: "wsgi.websocket", WITHOUT_GEVENT_WEBSOCKET: "gunicorn.socket"}


@pytest.fixture(scope="module", params=VARIANTS)
def variant(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def chat_server(module_greenserve, variant, hidden_gevent_websocket):
    return serve(module_greenserve, "chat:app", env=variant_env(variant, hidden_gevent_websocket))


def room() -> str:
    return f"room-{uuid.uuid4().hex[:8]}"


def test_websocket_transport_through_the_expected_environ_key(chat_server, variant, chat_clients):
    client = chat_clients(chat_server)
    assert client.sio.transport() == "websocket"
    assert client.welcome["async_mode"] == "gevent"
    assert client.welcome["websocket"] == EXPECTED_KEY[variant]
    # The same application still answers plain HTTP.
    assert requests.get(chat_server.url + "/", timeout=5).text == "chat"


def test_long_polling_upgraded_to_websocket_on_one_worker(chat_server, variant, chat_clients):
    """The socket.io clients' default: long-polling first, then the upgrade (one worker: no
    sticky sessions needed)."""
    client = chat_clients(chat_server, transports=("polling", "websocket"))
    assert client.welcome["websocket"] is None  # connected over long-polling
    client.wait_until(lambda: client.sio.transport() == "websocket", "upgrade to websocket")
    name = room()
    assert client.call("join", name) == {"room": name, "members": [client.sid]}
    client.call("say", {"room": name, "text": "upgraded"})
    assert client.wait_for("message")["text"] == "upgraded"


def test_rooms_broadcast_and_acknowledgements(chat_server, chat_clients):
    lobby, kitchen = room(), room()
    alice, bob, carol = (chat_clients(chat_server) for _ in range(3))
    assert alice.call("join", lobby) == {"room": lobby, "members": [alice.sid]}
    assert bob.call("join", lobby)["members"] == sorted([alice.sid, bob.sid])
    assert carol.call("join", kitchen)["members"] == [carol.sid]

    # An emit with an ack: the server's return value comes back to the sender.
    ack = alice.call("say", {"room": lobby, "text": "hello lobby"})
    assert ack == {"delivered_to": sorted([alice.sid, bob.sid])}
    expected = {"from": alice.sid, "room": lobby, "text": "hello lobby"}
    assert alice.wait_for("message") == expected
    assert bob.wait_for("message") == expected

    # Carol is in another room: her own message reaches her, the lobby's never did
    # (the room emit above queued nothing for her: the ack lists who it went to).
    carol.call("say", {"room": kitchen, "text": "hello kitchen"})
    carol.wait_for("message")
    assert carol.received("message") == [{"from": carol.sid, "room": kitchen, "text": "hello kitchen"}]

    # A broadcast reaches every client of the worker, rooms or not.
    assert bob.call("shout", "everyone!") == "ok"
    for client in (alice, bob, carol):
        assert client.wait_for("message", lambda data: data["text"] == "everyone!")["from"] == bob.sid


def test_many_messages_keep_their_order(chat_server, chat_clients):
    name = room()
    sender, receiver = chat_clients(chat_server), chat_clients(chat_server)
    sender.call("join", name)
    receiver.call("join", name)
    for i in range(100):
        sender.sio.emit("say", {"room": name, "text": f"m{i}"})
    receiver.wait_until(lambda: len(receiver.received("message")) == 100, "100 messages")
    assert [data["text"] for data in receiver.received("message")] == [f"m{i}" for i in range(100)]


@pytest.mark.parametrize("variant_name", VARIANTS)
def test_graceful_stop_closes_socketio_clients_with_1001(
    greenserve, chat_clients, hidden_gevent_websocket, variant_name
):
    server = serve(greenserve, "chat:app", env=variant_env(variant_name, hidden_gevent_websocket))
    client = chat_clients(server)
    client.call("join", room())
    started = time.monotonic()
    server.send_signal(signal.SIGTERM)
    client.wait_until(lambda: client.disconnect_reasons, "disconnect")
    assert client.close_codes == [1001]
    assert server.wait(10) == 0
    assert time.monotonic() - started < 5  # well within --graceful-timeout (10 s here)
    assert "Traceback" not in server.log


def test_two_workers_without_sticky_sessions_or_message_queue(greenserve, chat_clients):
    """``--workers 2``: the websocket-only transport needs no sticky sessions, but each
    worker is its own Socket.IO server, so a room spans one worker only.

    A websocket-only client makes one HTTP request (the upgrade) and keeps
    its whole session on that one connection, in the worker that accepted
    it. Long-polling makes a request per exchange, which any worker may
    accept, so it needs a load balancer with sticky sessions. And without a
    message queue (``SocketIO(app, message_queue="redis://...")``) nothing
    carries an emit to clients held by the other worker.
    """
    server = serve(greenserve, "-w", "2", "chat:app", ready=r"Ready: 2 worker")
    clients = [chat_clients(server)]
    # greenserve hands a new connection to the worker with fewer of them, so the
    # second client normally lands on the other worker; a few more if it did not.
    while len({client.welcome["pid"] for client in clients}) < 2:
        assert len(clients) < 20, "every client landed on the same worker"
        clients.append(chat_clients(server))
    first = clients[0]
    other = next(client for client in clients if client.welcome["pid"] != first.welcome["pid"])
    name = room()
    assert first.call("join", name)["members"] == [first.sid]
    assert other.call("join", name)["members"] == [other.sid]  # its worker does not know the first

    # Each worker delivers to its own members only: the ack says who got the message.
    assert first.call("say", {"room": name, "text": "from the first worker"}) == {"delivered_to": [first.sid]}
    assert other.call("say", {"room": name, "text": "from the second worker"}) == {
        "delivered_to": [other.sid]
    }
    assert first.wait_for("message")["text"] == "from the first worker"
    assert other.wait_for("message")["text"] == "from the second worker"
    assert [data["text"] for data in first.received("message")] == ["from the first worker"]
    assert [data["text"] for data in other.received("message")] == ["from the second worker"]
