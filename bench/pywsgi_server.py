"""Stock ``gevent.pywsgi.WSGIServer`` as a peer: no tuning, no access log.

Usage: python bench/pywsgi_server.py MODULE:APP PORT
"""

from gevent import monkey

monkey.patch_all()

import importlib  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402


def main() -> None:
    target, port = sys.argv[1], int(sys.argv[2])
    sys.path.insert(0, os.getcwd())
    module_name, _, attr = target.partition(":")
    app = getattr(importlib.import_module(module_name), attr or "application")
    server = WSGIServer(("127.0.0.1", port), app, log=None, backlog=2048)
    server.init_socket()
    print(f"Listening at: http://127.0.0.1:{server.address[1]}", flush=True)
    gevent.signal_handler(signal.SIGTERM, server.stop)
    server.serve_forever()


if __name__ == "__main__":
    main()
