"""One WSGI application that mounts a Flask app and a FastAPI app by path prefix."""

from __future__ import annotations

import asyncio
import os
import threading
import time

from fastapi import FastAPI
from flask import Flask, request

from greenserve.asgi import ASGIBridge

flask_app = Flask(__name__)


@flask_app.get("/sleep")
def flask_sleep():
    time.sleep(float(request.args.get("s", "0.5")))  # blocking: gevent makes it cooperative
    return "flask slept"


@flask_app.get("/where")
def flask_where():
    return {"script_name": request.environ["SCRIPT_NAME"], "path_info": request.environ["PATH_INFO"]}


api = FastAPI()


@api.get("/sleep")
async def api_sleep(s: float = 0.5) -> dict:
    await asyncio.sleep(s)
    return {"api": "slept"}


@api.get("/where")
async def api_where() -> dict:
    return {"pid": os.getpid(), "threads": threading.active_count()}


@api.post("/echo")
async def api_echo(payload: dict) -> dict:
    return {"echo": payload}


bridge = ASGIBridge(api)
MOUNTS = (("/flask", flask_app), ("/api", bridge))


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    for prefix, target in MOUNTS:
        if path == prefix or path.startswith(prefix + "/"):
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
            environ["PATH_INFO"] = path[len(prefix) :]
            return target(environ, start_response)
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
    return [b"not found"]
