"""ASGI applications (FastAPI, Starlette, ...) on greenserve's gevent workers.

Imported only when the application is ASGI (or a WSGI application mounts
one with :class:`ASGIBridge`). Each worker runs one asyncio loop in a real
OS thread; each request's greenlet waits cooperatively while the
application runs there.
"""

from greenserve.asgi.bridge import ASGIBridge

__all__ = ["ASGIBridge"]
