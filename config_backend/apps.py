from django.apps import AppConfig


class ConfigBackendConfig(AppConfig):
    name = "config_backend"
    verbose_name = "Configuration backend"
