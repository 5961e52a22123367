from django.apps import AppConfig


class ToolsConfig(AppConfig):
    name = "tools"

    def ready(self):
        from tools import receivers  # noqa: F401  (connects the signal receivers)
