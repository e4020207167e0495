from django.apps import AppConfig


class InboundConfig(AppConfig):
    name = "hooks.inbound"
    label = "inbound"
    verbose_name = "Inbound events"
