from django.apps import AppConfig


class ConfigBackendConfig(AppConfig):
    name = "config_backend"
    verbose_name = "Configuration backend"

    def ready(self):
        from config_backend import checks, receivers  # noqa: F401  (registers both)
