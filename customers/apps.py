from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = "Customers"

    def ready(self) -> None:
        from hub.events import brand_phone_address_types_changed, brand_time_zone_changed

        from .services import on_brand_phone_address_types_changed, on_brand_time_zone_changed

        # hub imports no app: a brand's time zone change reaches customers as news.
        brand_time_zone_changed.connect(on_brand_time_zone_changed, dispatch_uid="customers-time-zone-rebuild")
        brand_phone_address_types_changed.connect(
            on_brand_phone_address_types_changed, dispatch_uid="customers-phone-numbers-rebuild"
        )
