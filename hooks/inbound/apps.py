from django.apps import AppConfig


class InboundConfig(AppConfig):
    name = "hooks.inbound"
    label = "inbound"
    verbose_name = "Inbound events"

    def ready(self) -> None:
        # The adapters register their interpreters (hooks.inbound.registry) on
        # import; a worker or the admin reprocessing events needs them too,
        # not only the URLconf.
        from . import calllog, servicehooks  # noqa: F401
