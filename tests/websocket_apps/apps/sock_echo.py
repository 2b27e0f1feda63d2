"""A Flask-Sock echo: simple-websocket speaks WebSocket on ``environ["gunicorn.socket"]``."""

from flask import Flask
from flask_sock import Sock

app = Flask(__name__)
sock = Sock(app)


@app.get("/")
def index():
    return "plain HTTP"


@sock.route("/echo")
def echo(ws):
    """Echo text as text and bytes as bytes; ``close`` makes the server close with 4000 "bye"."""
    while True:
        data = ws.receive()
        if data == "close":
            ws.close(reason=4000, message="bye")
            return
        ws.send(data)
