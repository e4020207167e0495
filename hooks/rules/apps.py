from django.apps import AppConfig


class RulesConfig(AppConfig):
    name = "hooks.rules"
    label = "rules"
    verbose_name = "Dispatcher rules"

    def ready(self) -> None:
        from . import services  # noqa: F401 - subscribes the dispatcher to the event bus
