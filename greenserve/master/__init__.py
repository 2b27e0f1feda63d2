"""The pre-fork master: sockets, signals, spawning, reaping and replacing workers.

It never imports the application, gevent, asyncio or the protocol layer
(unless ``--preload`` asks for the application in the master), and it never
serves a request: it keeps the set of workers healthy.
"""
