from django.apps import AppConfig


class AssistantsConfig(AppConfig):
    name = "assistants"

    def ready(self):
        from assistants import receivers  # noqa: F401  (connects the signal receivers)
