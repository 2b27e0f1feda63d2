"""A small Flask-SocketIO chat served by greenserve: rooms, broadcasts, acknowledgements.

Nothing in it is specific to greenserve: ``SocketIO(app)`` picks its gevent
mode by itself (greenserve runs gevent workers), and the WebSockets go
through ``environ["wsgi.websocket"]`` when gevent-websocket is installed, or
through simple-websocket on the raw socket when it is not.

Run it from the repository root::

    greenserve --chdir examples/flask_socketio_chat app:app

then open http://127.0.0.1:8000/ in two browser windows, or run
``python examples/flask_socketio_chat/client.py``.

Events (client -> server; the return value is the acknowledgement):

- ``join`` ``{"room", "name"}``: enter a room; the room hears ``"<name> joined"``;
- ``say`` ``{"text"}``: a ``message`` to everyone in the sender's room; the ack
  says how many clients it went to.

The server emits ``message`` ``{"room", "name", "text"}`` events.
"""

from __future__ import annotations

from flask import Flask, request
from flask_socketio import SocketIO, emit, join_room, leave_room

app = Flask(__name__)
socketio = SocketIO(app)

#: Each connected client's room and name, by Socket.IO session id (one worker's clients:
#: run several workers with a message queue, see docs/websockets.md).
members: dict[str, dict[str, str]] = {}

MAX_TEXT = 500


def _clean(value: object, default: str, limit: int) -> str:
    text = " ".join(str(value or "").split())[:limit]
    return text or default


@app.get("/")
def index() -> str:
    return PAGE


@socketio.on("join")
def on_join(data: dict) -> dict:
    room = _clean(data.get("room"), "lobby", 40)
    name = _clean(data.get("name"), "anonymous", 40)
    previous = members.get(request.sid)
    if previous is not None:
        leave_room(previous["room"])
    members[request.sid] = {"room": room, "name": name}
    join_room(room)
    emit("message", {"room": room, "name": "server", "text": f"{name} joined"}, to=room)
    return {"room": room, "name": name}


@socketio.on("say")
def on_say(data: dict) -> dict:
    member = members.get(request.sid)
    if member is None:
        return {"error": "join a room first"}
    text = _clean(data.get("text"), "", MAX_TEXT)
    if not text:
        return {"error": "empty message"}
    room = member["room"]
    emit("message", {"room": room, "name": member["name"], "text": text}, to=room)
    listeners = sum(1 for _ in socketio.server.manager.get_participants("/", room))
    return {"delivered_to": listeners}


@socketio.on("disconnect")
def on_disconnect(reason: object = None) -> None:
    member = members.pop(request.sid, None)
    if member is not None:
        text = f"{member['name']} left"
        message = {"room": member["room"], "name": "server", "text": text}
        emit("message", message, to=member["room"], include_self=False)


#: The page: the Socket.IO protocol over the browser's own WebSocket, so it needs no
#: download (a real page would load the socket.io client library; see README.md).
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Flask-SocketIO chat on greenserve</title>
<style>
  body { font: 15px system-ui, sans-serif; max-width: 40em; margin: 2em auto; }
  #log { border: 1px solid #ccc; height: 18em; overflow-y: auto; padding: .5em; margin: .5em 0; }
  #log p { margin: .2em 0; } .server { color: #777; } input { font: inherit; }
</style>
</head>
<body>
<h1>Chat</h1>
<form id="join">
  <input id="name" placeholder="name" value="guest" size="10">
  <input id="room" placeholder="room" value="lobby" size="10">
  <button>Join</button> <span id="status">connecting...</span>
</form>
<div id="log"></div>
<form id="say">
  <input id="text" placeholder="message" size="40" autocomplete="off"> <button>Send</button>
</form>
<script>
// Socket.IO v5 over Engine.IO v4, WebSocket transport only: every WebSocket message is
// one packet. "0{...}" open, "2" ping -> "3" pong, "40" connect, "42[...]" an event,
// "42<id>[...]" an event that wants an ack, answered by "43<id>[...]".
const log = document.getElementById("log"), status = document.getElementById("status");
const acks = new Map();
let nextAck = 0;
const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/socket.io/?EIO=4&transport=websocket`);

function emit(event, data, callback) {
  let id = "";
  if (callback) { id = String(nextAck++); acks.set(id, callback); }
  ws.send("42" + id + JSON.stringify([event, data]));
}
function show(message) {
  const line = document.createElement("p");
  line.className = message.name === "server" ? "server" : "";
  line.textContent = `[${message.room}] ${message.name}: ${message.text}`;
  log.append(line);
  log.scrollTop = log.scrollHeight;
}
ws.onmessage = (event) => {
  const packet = event.data;
  if (packet[0] === "0") ws.send("40");                    // Engine.IO open: connect to "/"
  else if (packet === "2") ws.send("3");                    // ping
  else if (packet.startsWith("40")) { status.textContent = "connected"; join(); }
  else if (packet.startsWith("42")) {
    const [name, data] = JSON.parse(packet.slice(2));
    if (name === "message") show(data);
  } else if (packet.startsWith("43")) {
    const id = packet.slice(2).match(/^\\d+/)[0];
    const callback = acks.get(id);
    acks.delete(id);
    if (callback) callback(...JSON.parse(packet.slice(2 + id.length)));
  }
};
ws.onclose = (event) => { status.textContent = `disconnected (${event.code})`; };

function join() {
  emit("join", {name: document.getElementById("name").value, room: document.getElementById("room").value},
       (joined) => { status.textContent = `in ${joined.room} as ${joined.name}`; });
}
document.getElementById("join").onsubmit = (event) => { event.preventDefault(); join(); };
document.getElementById("say").onsubmit = (event) => {
  event.preventDefault();
  const text = document.getElementById("text");
  emit("say", {text: text.value}, (ack) => {
    if (ack.error) status.textContent = ack.error;
  });
  text.value = "";
};
</script>
</body>
</html>
"""
