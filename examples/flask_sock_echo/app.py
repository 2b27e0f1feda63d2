"""A Flask-Sock echo served by greenserve.

Flask-Sock runs on simple-websocket, which speaks WebSocket itself on the
raw socket greenserve puts in ``environ["gunicorn.socket"]`` (as gunicorn
does): the route is an ordinary function with a loop, and greenserve runs it
in its own greenlet, so thousands of them wait for messages at once.

Run it from the repository root::

    greenserve --chdir examples/flask_sock_echo app:app

then open http://127.0.0.1:8000/, or run
``python examples/flask_sock_echo/client.py hello``.

``/echo`` sends back every message (text as text, binary as binary); the
text ``bye`` makes the server close the WebSocket with code 1000.
"""

from __future__ import annotations

from flask import Flask
from flask_sock import Sock

app = Flask(__name__)
#: simple-websocket's options for every route: pings keep idle connections through proxies,
#: and a message larger than 1 MiB closes the connection (code 1009).
app.config["SOCK_SERVER_OPTIONS"] = {"ping_interval": 25, "max_message_size": 1024 * 1024}
sock = Sock(app)


@app.get("/")
def index() -> str:
    return PAGE


@sock.route("/echo")
def echo(ws) -> None:
    while True:
        message = ws.receive()
        if message == "bye":
            ws.close(reason=1000, message="goodbye")
            return
        ws.send(message)


PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Flask-Sock echo on greenserve</title>
<style>body { font: 15px system-ui, sans-serif; max-width: 40em; margin: 2em auto; }
#log p { margin: .2em 0; }</style></head>
<body>
<h1>Echo</h1>
<form id="send"><input id="text" value="hello" size="40"> <button>Send</button>
<span id="status">connecting...</span></form>
<div id="log"></div>
<script>
const log = document.getElementById("log"), status = document.getElementById("status");
const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/echo`);
function show(text) { const p = document.createElement("p"); p.textContent = text; log.append(p); }
ws.onopen = () => { status.textContent = "connected"; };
ws.onmessage = (event) => show(`echo: ${event.data}`);
ws.onclose = (event) => { status.textContent = `closed (${event.code} ${event.reason})`; };
document.getElementById("send").onsubmit = (event) => {
  event.preventDefault();
  const text = document.getElementById("text").value;
  show(`sent: ${text}`);
  ws.send(text);
};
</script>
</body>
</html>
"""
