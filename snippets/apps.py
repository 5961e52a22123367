from django.apps import AppConfig


class SnippetsConfig(AppConfig):
    name = "snippets"

    def ready(self):
        from snippets import receivers  # noqa: F401  (connects the signal receivers)
