"""Django integration: add ``"greenserve.contrib.django"`` to ``INSTALLED_APPS``
and run ``python manage.py greenserve``.
"""
