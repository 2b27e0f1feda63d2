"""A command-line client for the chat example, with python-socketio.

    python examples/flask_socketio_chat/client.py [--url URL] [--room ROOM] [--name NAME]

Each line typed (or piped in) is sent to the room; messages from the room
are printed as they arrive. At the end of the input the client waits a
moment for the last messages, then disconnects. For example::

    echo "hello from the terminal" | python examples/flask_socketio_chat/client.py

It uses the WebSocket transport only (no long-polling): with several
greenserve workers that needs no sticky sessions (see docs/websockets.md).
"""

from __future__ import annotations

import argparse
import sys
import threading

import socketio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server (default: %(default)s)")
    parser.add_argument("--room", default="lobby", help="the room to join (default: %(default)s)")
    parser.add_argument("--name", default="terminal", help="your name in the room (default: %(default)s)")
    parser.add_argument(
        "--wait", type=float, default=1.0, help="seconds to wait for messages after the input ends"
    )
    args = parser.parse_args(argv)

    sio = socketio.Client(reconnection=False)
    own_echo = threading.Event()

    @sio.on("message")
    def on_message(message: dict) -> None:
        print(f"[{message['room']}] {message['name']}: {message['text']}", flush=True)
        if message["name"] == args.name:
            own_echo.set()

    @sio.on("disconnect")
    def on_disconnect(reason: object = None) -> None:
        print(f"disconnected ({reason})", flush=True)

    try:
        sio.connect(args.url, transports=["websocket"], wait_timeout=10)
    except socketio.exceptions.ConnectionError as exc:
        print(f"cannot connect to {args.url}: {exc}", file=sys.stderr)
        return 1
    joined = sio.call("join", {"room": args.room, "name": args.name}, timeout=10)
    print(f"joined {joined['room']} as {joined['name']} (transport: {sio.transport()})", flush=True)
    for line in sys.stdin:
        text = line.strip()
        if not text:
            continue
        own_echo.clear()
        ack = sio.call("say", {"text": text}, timeout=10)
        if "error" in ack:
            print(f"not sent: {ack['error']}", file=sys.stderr)
            continue
        own_echo.wait(10)
        print(f"(delivered to {ack['delivered_to']} client(s) in {args.room})", flush=True)
    sio.sleep(args.wait)
    sio.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
