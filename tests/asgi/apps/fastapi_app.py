"""A real FastAPI application: params, JSON bodies, dependencies, streaming,
background tasks and a WebSocket echo."""

from __future__ import annotations

import asyncio
import os
import threading
import time

from _markers import now, record
from fastapi import (
    BackgroundTasks,
    Depends,
    FastAPI,
    Header,
    HTTPException,
    Request,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

app = FastAPI()


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


async def current_user(x_token: str = Header(default="")) -> dict:
    if x_token != "secret":
        raise HTTPException(status_code=401, detail="bad token")
    return {"user": "alice"}


def sync_current_user(x_token: str = Header(default="")) -> dict:
    """A plain ``def`` dependency: FastAPI runs it in its thread pool."""
    if x_token != "secret":
        raise HTTPException(status_code=401, detail="bad token")
    return {"user": "bob", "thread": threading.current_thread().name}


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None, limit: int = 10) -> dict:
    return {"item_id": item_id, "q": q, "limit": limit}


@app.post("/items")
async def create_item(item: Item) -> dict:
    return {"created": item.model_dump(), "double": item.price * 2}


@app.get("/me")
async def me(user: dict = Depends(current_user)) -> dict:
    return user


@app.get("/client")
async def client(request: Request) -> dict:
    return {"host": request.client.host, "port": request.client.port}


@app.get("/pid")
async def pid() -> dict:
    return {"pid": os.getpid()}


@app.get("/sleep")
async def sleep(s: float = 0.5) -> dict:
    await asyncio.sleep(s)
    return {"slept": s}


@app.get("/sse")
async def sse(n: int = 5, delay: float = 0.2) -> StreamingResponse:
    async def events():
        for i in range(n):
            if i:
                await asyncio.sleep(delay)
            yield f"data: {i}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


@app.get("/sse-forever")
async def sse_forever(request: Request, marker: str) -> StreamingResponse:
    """An endless event stream that stops when the client goes away (the usual
    FastAPI pattern: poll ``request.is_disconnected()`` between events)."""

    async def events():
        sent = 0
        while True:
            if await request.is_disconnected():
                record(marker, {"stopped_after": sent, "at": now()})
                return
            yield f"data: {sent}\n\n"
            sent += 1
            await asyncio.sleep(0.02)

    return StreamingResponse(events(), media_type="text/event-stream")


@app.post("/background")
async def background(marker: str, tasks: BackgroundTasks, delay: float = 0.3) -> dict:
    async def write_marker() -> None:
        await asyncio.sleep(delay)
        record(marker, {"written_at": now()})

    tasks.add_task(write_marker)
    return {"responded_at": now()}


# -- plain ``def`` code: Starlette runs it in a thread pool (anyio.to_thread) --------


@app.get("/sync")
def sync_endpoint(s: float = 0.1) -> dict:
    time.sleep(s)
    return {"slept": s, "thread": threading.current_thread().name}


@app.get("/sync-dependency")
async def sync_dependency(user: dict = Depends(sync_current_user)) -> dict:
    return user


@app.get("/to-thread")
async def to_thread(s: float = 0.05) -> dict:
    """asyncio's own thread pool (loop.run_in_executor)."""
    name = await asyncio.to_thread(lambda: (time.sleep(s), threading.current_thread().name)[1])
    return {"slept": s, "thread": name}


@app.post("/sync-background")
async def sync_background(marker: str, tasks: BackgroundTasks) -> dict:
    def write_marker() -> None:
        record(marker, {"written_at": now()})

    tasks.add_task(write_marker)
    return {"responded_at": now()}


@app.websocket("/ws")
async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text("echo:" + message["text"])
            else:
                await websocket.send_bytes(b"echo:" + message["bytes"])
    except WebSocketDisconnect:
        return
