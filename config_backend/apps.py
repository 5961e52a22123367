from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OperationsConfig(AppConfig):
    """The top floor as an app so Django finds its management commands (no models), and
    gives core.reads the reads of the history (at a revision, a label's revision)."""

    name = "config_backend"
    label = "operations"
    verbose_name = _("Operations")

    def ready(self):
        from config_backend.history.labels import label_state
        from config_backend.history.selectors import build_config_at
        from core.reads.reads import register

        register(
            config_at=build_config_at,
            label_state=label_state,
        )
