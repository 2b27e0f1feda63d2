"""A Flask-SocketIO chat: rooms, broadcasts, acknowledgements.

``SocketIO(app)`` picks ``async_mode="gevent"`` by itself under greenserve
(gevent is imported and the standard library is patched). engineio then
serves the WebSocket through ``environ["wsgi.websocket"]`` when
gevent-websocket is installed, and through simple-websocket on
``environ["gunicorn.socket"]`` when it is not: the ``welcome`` event says
which one this connection used, and from which worker process.
"""

import os

from flask import Flask, request
from flask_socketio import SocketIO, emit, join_room

app = Flask(__name__)
socketio = SocketIO(app)


def _members(room: str) -> list[str]:
    """The sids in ``room`` that this worker process knows of (no message queue: only its own)."""
    return sorted(sid for sid, _ in socketio.server.manager.get_participants("/", room))


def _websocket_key() -> str | None:
    """Which environ key engineio used for this connection's WebSocket (None: long-polling)."""
    environ = request.environ
    websocket, raw = environ.get("wsgi.websocket"), environ.get("gunicorn.socket")
    if websocket is not None and websocket.accepted:
        return "wsgi.websocket"
    if raw is not None and raw.taken:
        return "gunicorn.socket"
    return None


@app.get("/")
def index():
    return "chat"


@socketio.on("connect")
def on_connect():
    emit(
        "welcome",
        {
            "sid": request.sid,
            "pid": os.getpid(),
            "async_mode": socketio.async_mode,
            "websocket": _websocket_key(),
        },
    )


@socketio.on("join")
def on_join(room):
    join_room(room)
    return {"room": room, "members": _members(room)}


@socketio.on("say")
def on_say(data):
    """Send ``text`` to everyone in ``room`` (the sender too); the ack lists who got it."""
    room = data["room"]
    emit("message", {"from": request.sid, "room": room, "text": data["text"]}, to=room)
    return {"delivered_to": _members(room)}


@socketio.on("shout")
def on_shout(text):
    """Send ``text`` to every client connected to this worker."""
    emit("message", {"from": request.sid, "room": None, "text": text}, broadcast=True)
    return "ok"
