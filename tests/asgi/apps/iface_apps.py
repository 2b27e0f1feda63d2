"""Application shapes for --interface detection."""

from __future__ import annotations


async def asgi3(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"asgi3"})


class ASGI2:
    """ASGI 2 ("double callable"): instantiated with the scope, then awaited."""

    def __init__(self, scope) -> None:
        self.scope = scope

    async def __call__(self, receive, send) -> None:
        if self.scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": b"asgi2"})


class _Instance:
    async def __call__(self, scope, receive, send) -> None:
        await asgi3(scope, receive, send)


asgi3_instance = _Instance()


def wsgi(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "4")])
    return [b"wsgi"]
