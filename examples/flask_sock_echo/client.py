"""A command-line client for the echo example, with simple-websocket (installed with Flask-Sock).

    python examples/flask_sock_echo/client.py [--url URL] MESSAGE...

Sends each message, prints the echo, then says ``bye`` and prints how the
server closed the WebSocket.
"""

from __future__ import annotations

import argparse
import sys

import simple_websocket


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8000/echo", help="(default: %(default)s)")
    parser.add_argument("messages", nargs="*", default=["hello"], help="what to send (default: hello)")
    args = parser.parse_args(argv)
    try:
        ws = simple_websocket.Client.connect(args.url)
    except (OSError, simple_websocket.ConnectionError) as exc:
        print(f"cannot connect to {args.url}: {exc}", file=sys.stderr)
        return 1
    try:
        for message in args.messages:
            ws.send(message)
            print(f"echo: {ws.receive(timeout=10)}")
        ws.send("bye")
        ws.receive(timeout=10)
    except simple_websocket.ConnectionClosed as exc:
        print(f"closed by the server: {exc.reason} {exc.message}")
        return 0
    finally:
        if ws.connected:
            ws.close()
    print("the server did not close the connection", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
