"""greenserve: a fast, strict WSGI server on gevent greenlets.

Importing this package is cheap and side-effect free: it must not import
gevent, asyncio or the application, because the pre-fork master imports it.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
