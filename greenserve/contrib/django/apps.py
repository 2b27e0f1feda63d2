"""The Django app configuration for greenserve's management command."""

from django.apps import AppConfig


class GreenserveConfig(AppConfig):
    name = "greenserve.contrib.django"
    label = "greenserve"
    verbose_name = "greenserve"
