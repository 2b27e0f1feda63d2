"""What the workers of ``manage.py greenserve`` load: Django's WSGI or ASGI
application, wrapped to serve static files when ``runserver`` would.

Imported in the worker, after gevent has patched the standard library, so
Django, its database drivers and everything else get cooperative I/O.
"""

from __future__ import annotations

from typing import Any


def _serve_static() -> bool:
    from django.apps import apps
    from django.conf import settings

    return bool(settings.DEBUG) and apps.is_installed("django.contrib.staticfiles")


def wsgi(static: bool = True) -> Any:
    """``settings.WSGI_APPLICATION`` (with static files in DEBUG, as runserver)."""
    import django
    from django.core.servers.basehttp import get_internal_wsgi_application

    django.setup(set_prefix=False)
    application = get_internal_wsgi_application()
    if static and _serve_static():
        from django.contrib.staticfiles.handlers import StaticFilesHandler

        application = StaticFilesHandler(application)
    return application


def asgi(static: bool = True) -> Any:
    """``settings.ASGI_APPLICATION`` (default: Django's own), with static files in DEBUG."""
    import django
    from django.conf import settings
    from django.utils.module_loading import import_string

    django.setup(set_prefix=False)
    path = getattr(settings, "ASGI_APPLICATION", None)
    if path:
        application = import_string(path)
    else:
        from django.core.asgi import get_asgi_application

        application = get_asgi_application()
    if static and _serve_static():
        from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

        application = ASGIStaticFilesHandler(application)
    return application
