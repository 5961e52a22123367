from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AssistantsConfig(AppConfig):
    name = "assistants"
    verbose_name = _("Assistants")

    def ready(self):
        from assistants import config_api, receivers  # noqa: F401  (connects the signal receivers)
        from core.reads.reads import register

        register(live_config=config_api.live_config, is_active=config_api.is_active)
