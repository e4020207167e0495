from django.apps import AppConfig


class HubConfig(AppConfig):
    name = "hub"
    verbose_name = "Hub: brands, staff and credentials"

    def ready(self) -> None:
        from . import signals  # noqa: F401 - connects the generation bump on brand and key changes
