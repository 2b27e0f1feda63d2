"""A plain ASGI 3 application (no framework), one behaviour per path."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from urllib.parse import parse_qs

from _markers import now, record

PROGRESS: dict[str, int] = {}


def jsonable(value):
    if isinstance(value, bytes):
        return {"bytes": value.decode("latin-1")}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)  # an extension's object (the PROXY protocol header)


def query(scope) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(scope["query_string"].decode("latin-1")).items()}


async def respond(send, status: int, body: bytes, content_type: bytes = b"text/plain") -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def respond_json(send, data, status: int = 200) -> None:
    await respond(send, status, json.dumps(data).encode(), b"application/json")


async def read_body(receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


async def lifespan(scope, receive, send) -> None:
    asyncio.current_task().set_name("lifespan")
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            delay = float(os.environ.get("ASGI_STARTUP_DELAY", "0"))
            began = now()
            if delay:
                await asyncio.sleep(delay)
            scope["state"].update({"started": True, "pid": os.getpid(), "startup_done": now()})
            record(f"raw-startup-{os.getpid()}.json", {"began": began, "done": now()})
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            record(f"raw-shutdown-{os.getpid()}.json", {"at": now()})
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope {scope['type']!r}")
    route = scope["path"].removeprefix(scope.get("root_path", ""))
    handler = ROUTES.get(route)
    if handler is None and route.startswith("/scope"):
        handler = scope_echo
    if handler is None:
        await respond(send, 404, b"no route " + scope["path"].encode())
        return
    await handler(scope, receive, send)


async def scope_echo(scope, receive, send) -> None:
    body = await read_body(receive)
    data = jsonable(dict(scope))
    data["body"] = body.decode("latin-1")
    data["types"] = {
        key: type(scope.get(key)).__name__
        for key in ("raw_path", "query_string", "path", "root_path", "client", "server", "state")
    }
    data["header_types"] = sorted({f"{type(n).__name__}/{type(v).__name__}" for n, v in scope["headers"]})
    await respond_json(send, data)


async def sleep(scope, receive, send) -> None:
    record(query(scope).get("entered", ""), {"at": now()})  # a test waits for the request to be here
    await asyncio.sleep(float(query(scope).get("s", "0.5")))
    await respond(send, 200, b"slept")


async def echo(scope, receive, send) -> None:
    body = await read_body(receive)
    await respond(send, 200, body, b"application/octet-stream")


async def slow_read(scope, receive, send) -> None:
    """Read the body slowly, one receive() at a time, hashing it."""
    delay = float(query(scope).get("delay", "0.002"))
    digest = hashlib.sha256()
    size = chunks = biggest = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            await respond(send, 400, b"disconnected")
            return
        data = message.get("body", b"")
        digest.update(data)
        size += len(data)
        chunks += 1
        biggest = max(biggest, len(data))
        if not message.get("more_body", False):
            break
        await asyncio.sleep(delay)
    await respond_json(
        send, {"sha256": digest.hexdigest(), "size": size, "chunks": chunks, "biggest": biggest}
    )


async def big(scope, receive, send) -> None:
    """Stream ``total`` bytes in ``chunk``-sized pieces, counting what send() accepted."""
    args = query(scope)
    total = int(args.get("total", str(200 * 1024 * 1024)))
    size = int(args.get("chunk", str(64 * 1024)))
    key = args.get("key", "big")
    marker = args.get("marker", "")
    piece = b"x" * size
    PROGRESS[key] = 0
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    try:
        while PROGRESS[key] < total:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            PROGRESS[key] += size
        await send({"type": "http.response.body", "body": b""})
    except OSError as exc:
        record(marker, {"error": type(exc).__name__, "sent": PROGRESS[key], "at": now()})
        raise
    record(marker, {"error": None, "sent": PROGRESS[key], "at": now()})


async def progress(scope, receive, send) -> None:
    await respond_json(send, {"sent": PROGRESS.get(query(scope).get("key", "big"), -1)})


async def wait_disconnect(scope, receive, send) -> None:
    """Start a stream, then wait in receive() until the client goes away."""
    marker = query(scope).get("marker", "")
    body = await read_body(receive)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"waiting:" + body, "more_body": True})
    message = await receive()
    record(marker, {"message": message, "at": now()})


async def stream_and_listen(scope, receive, send) -> None:
    """Stream forever while another task listens for http.disconnect."""
    marker = query(scope).get("marker", "")
    await read_body(receive)
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]}
    )

    async def stream() -> None:
        count = 0
        while True:
            await send({"type": "http.response.body", "body": b"data: %d\n\n" % count, "more_body": True})
            count += 1
            await asyncio.sleep(0.05)

    streamer = asyncio.ensure_future(stream())
    message = await receive()
    streamer.cancel()
    try:
        await streamer
    except (asyncio.CancelledError, OSError):
        pass
    record(marker, {"message": message, "at": now()})


# -- misbehaving applications -------------------------------------------------------


async def raise_before(scope, receive, send) -> None:
    raise RuntimeError("boom before the response started")


async def raise_after(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"partial-body", "more_body": True})
    await asyncio.sleep(0.05)
    raise RuntimeError("boom in the middle of the response")


async def body_before_start(scope, receive, send) -> None:
    await send({"type": "http.response.body", "body": b"too early"})


async def start_twice(scope, receive, send) -> None:
    start = {"type": "http.response.start", "status": 200, "headers": []}
    await send(start)
    await send(start)
    await send({"type": "http.response.body", "body": b"twice"})


async def unknown_message(scope, receive, send) -> None:
    await send({"type": "http.response.bogus"})
    await respond(send, 200, b"should not get here")


async def no_response(scope, receive, send) -> None:
    return


async def start_only(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})


async def body_after_end(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"a", "more_body": True})
    await send({"type": "http.response.body", "body": b"b", "more_body": False})
    await send({"type": "http.response.body", "body": b"EXTRA", "more_body": False})


async def bad_status(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": "not-a-number", "headers": []})
    await send({"type": "http.response.body", "body": b"bad"})


async def tasks(scope, receive, send) -> None:
    """The application tasks still running on the loop (besides this one)."""
    current = asyncio.current_task()
    names = sorted(
        task.get_coro().__qualname__
        for task in asyncio.all_tasks()
        if task is not current and not task.done() and task.get_name() != "lifespan"
    )
    await respond_json(send, {"tasks": names})


async def pid(scope, receive, send) -> None:
    await respond_json(send, {"pid": os.getpid(), "state": scope.get("state")})


ROUTES = {
    "/sleep": sleep,
    "/echo": echo,
    "/slow-read": slow_read,
    "/big": big,
    "/progress": progress,
    "/wait-disconnect": wait_disconnect,
    "/stream-and-listen": stream_and_listen,
    "/raise-before": raise_before,
    "/raise-after": raise_after,
    "/body-before-start": body_before_start,
    "/start-twice": start_twice,
    "/unknown-message": unknown_message,
    "/no-response": no_response,
    "/start-only": start_only,
    "/body-after-end": body_after_end,
    "/bad-status": bad_status,
    "/pid": pid,
    "/tasks": tasks,
}
