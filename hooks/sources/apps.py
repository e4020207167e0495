from django.apps import AppConfig


class SourcesConfig(AppConfig):
    """Lookup sources: the brand's own systems asked when the hub's store does not know a caller."""

    name = "hooks.sources"
    label = "sources"
    verbose_name = "Lookup sources"

    def ready(self) -> None:
        from hooks.outbound.configio import register_config_section

        from . import configio, services

        register_config_section("lookup_sources", configio.lookup_sources_export, configio.lookup_sources_load)
        services.connect_signals()
