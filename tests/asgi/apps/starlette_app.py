"""A Starlette application: routes, a middleware, streamed uploads, lifespan state."""

from __future__ import annotations

import contextlib
import hashlib
import os
import time

from _markers import now, record
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket


class StampMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        response.headers["X-Stamp"] = "starlette"
        response.headers["X-Elapsed"] = f"{time.perf_counter() - started:.6f}"
        return response


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    app.state.boot_pid = os.getpid()
    app.state.started_at = now()
    record("starlette-startup.json", {"pid": os.getpid(), "at": app.state.started_at})
    yield {"greeting": "hello from lifespan", "counter": {"requests": 0}}
    record("starlette-shutdown.json", {"pid": os.getpid(), "at": now()})


async def homepage(request: Request) -> PlainTextResponse:
    return PlainTextResponse("home")


async def user(request: Request) -> JSONResponse:
    return JSONResponse({"name": request.path_params["name"], "params": dict(request.query_params)})


async def upload(request: Request) -> JSONResponse:
    digest = hashlib.sha256()
    size = chunks = biggest = 0
    async for chunk in request.stream():
        if chunk:
            digest.update(chunk)
            size += len(chunk)
            chunks += 1
            biggest = max(biggest, len(chunk))
    return JSONResponse({"sha256": digest.hexdigest(), "size": size, "chunks": chunks, "biggest": biggest})


async def state(request: Request) -> JSONResponse:
    counter = request.state.counter
    counter["requests"] += 1
    return JSONResponse(
        {
            "greeting": request.state.greeting,
            "requests": counter["requests"],
            "boot_pid": request.app.state.boot_pid,
            "started_at": request.app.state.started_at,
            "pid": os.getpid(),
            "now": now(),
        }
    )


async def url(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "url": str(request.url),
            "base_url": str(request.base_url),
            "url_for": str(request.url_for("user", name="x")),
        }
    )


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol="chat" if "chat" in websocket.scope["subprotocols"] else None)
    async for text in websocket.iter_text():
        await websocket.send_text(text.upper())


async def ws_deny(websocket: WebSocket) -> None:
    """Starlette's denial response: needs the server's ``websocket.http.response`` extension."""
    await websocket.send_denial_response(PlainTextResponse("no token", status_code=401))


app = Starlette(
    routes=[
        Route("/", homepage),
        Route("/users/{name}", user, name="user"),
        Route("/upload", upload, methods=["POST", "PUT"]),
        Route("/state", state),
        Route("/url", url),
        WebSocketRoute("/ws", ws_echo),
        WebSocketRoute("/ws-deny", ws_deny),
    ],
    middleware=[Middleware(StampMiddleware)],
    lifespan=lifespan,
)
