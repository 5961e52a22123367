from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CoreConfig(AppConfig):
    name = "core"
    # The label these models had when they lived in config_backend: their tables, migration
    # history, content types and permissions (`config_backend.view_apikey`) keep their names.
    label = "config_backend"
    verbose_name = _("Configuration backend")

    def ready(self):
        from core import checks, receivers  # noqa: F401  (registers both)
