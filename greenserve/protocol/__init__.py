"""Sans-IO HTTP/1.1: bytes in -> request events; response parts -> bytes out.

Nothing in this package touches a socket, gevent or a clock, so every rule
can be tested by feeding bytes (split at every offset) to both backends.
"""
