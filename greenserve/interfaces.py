"""zope.interface contracts for the server events that hooks subscribe to.

Events are announced with ``zope.event.notify``; each provides one of the
``I*`` interfaces below, so a subscriber can tell them apart with
``IWhenReady.providedBy(event)``, or use :func:`greenserve.hooks.subscribe`
which does that filtering. The functions named after hooks in a
configuration file (``def when_ready(arbiter): ...``) are subscribed the
same way.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IServerEvent(Interface):
    """Something happened in the life of a greenserve server."""


class IMasterEvent(IServerEvent):
    arbiter = Attribute("The master (greenserve.master.arbiter.Arbiter).")


class IStarting(IMasterEvent):
    """The master is starting, before it binds its sockets (hook: on_starting)."""


class IWhenReady(IMasterEvent):
    """Every worker is ready and serving (hook: when_ready)."""


class IPreFork(IMasterEvent):
    """In the master, just before a worker is forked (hook: pre_fork)."""

    worker = Attribute("The worker record (greenserve.master.process.WorkerRecord).")


class IPostFork(IMasterEvent):
    """In the new worker process, right after the fork (hook: post_fork)."""

    worker = Attribute("The worker record.")


class IExit(IMasterEvent):
    """The master is exiting (hook: on_exit)."""


class IWorkerEvent(IServerEvent):
    worker = Attribute("The worker record, or None in single-process mode.")


class IPostWorkerInit(IWorkerEvent):
    """In a worker, after the application is loaded (hook: post_worker_init)."""


class IWorkerExit(IWorkerEvent):
    """In a worker, as it exits (hook: worker_exit)."""


class IPreRequest(IWorkerEvent):
    """Before the application is called for a request (hook: pre_request)."""

    environ = Attribute("The WSGI environ.")


class IPostRequest(IWorkerEvent):
    """After the response was sent (hook: post_request)."""

    environ = Attribute("The WSGI environ.")
    status = Attribute("The response status code (int).")
