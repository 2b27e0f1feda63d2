"""WSGI applications the functional tests serve through the real ``greenserve`` command."""
