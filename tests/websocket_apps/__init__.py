"""Real WebSocket applications (Flask-SocketIO, Flask-Sock, gevent-websocket handlers, Django)
served by the real ``greenserve`` command and driven by real clients."""
