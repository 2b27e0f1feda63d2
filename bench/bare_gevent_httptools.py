"""The floor: gevent + httptools with no WSGI, no validation, a fixed response.

Not a server anyone should run: it shows what the event loop and the C
parser cost on their own, so greenserve's overhead can be read as a ratio.
Usage: python bench/bare_gevent_httptools.py PORT
"""

from gevent import monkey

monkey.patch_all()

import socket  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
import httptools  # noqa: E402
from gevent.server import StreamServer  # noqa: E402

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!"


class Proto:
    __slots__ = ("done",)

    def __init__(self):
        self.done = 0

    def on_message_complete(self):
        self.done += 1


def handle(sock, address):
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    proto = Proto()
    parser = httptools.HttpRequestParser(proto)
    recv = sock.recv
    send = sock.sendall
    try:
        while True:
            data = recv(65536)
            if not data:
                return
            parser.feed_data(data)
            if proto.done:
                send(RESPONSE * proto.done)
                proto.done = 0
    except OSError:
        return
    finally:
        sock.close()


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    server = StreamServer(("127.0.0.1", port), handle, backlog=2048)
    server.start()  # binds: with port 0, the real port is known only now
    print(f"Listening at: http://127.0.0.1:{server.address[1]}", flush=True)
    gevent.signal_handler(15, server.stop)
    server.serve_forever()
