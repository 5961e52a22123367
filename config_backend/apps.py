from django.apps import AppConfig


class OperationsConfig(AppConfig):
    """The top floor as an app only so Django finds its management commands; no models."""

    name = "config_backend"
    label = "operations"
    verbose_name = "Operations"
