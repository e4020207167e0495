"""The read-only "Logs" panel on a customer's page: its inbound calls, inbound
events, deliveries and delivery attempts, each a link into the filtered list.

Hooks models are reached through the app registry (synclog never imports hooks).
"""

from __future__ import annotations

from django.apps import apps
from django.utils.html import format_html, format_html_join

from .detail import changelist_url, logs_url
from .models import InboundRequest


def _installed(app_label: str, model_name: str):
    try:
        return apps.get_model(app_label, model_name)
    except LookupError:
        return None


def customer_log_links(customer) -> list[tuple[str, str]]:
    """(label, url) for each list of this customer's log rows."""
    brand, ref = customer.brand_id, customer.customer_id
    calls = InboundRequest.objects.filter(customer=customer).count()
    links = [(f"Inbound calls ({calls})", logs_url(brand=brand, direction="inbound", customer=ref))]
    event_model = _installed("inbound", "InboundEvent")
    if event_model is not None:
        events = event_model.objects.filter(customer=customer).count()
        links.append(
            (f"Inbound events ({events})", changelist_url("inbound_inboundevent", brand__id__exact=brand, customer=ref))
        )
    delivery_model = _installed("outbound", "Delivery")
    if delivery_model is not None:  # indexed on (customer_id, created_at)
        deliveries = delivery_model.objects.filter(customer_id=customer.pk).count()
        links.append(
            (
                f"Deliveries ({deliveries})",
                changelist_url("outbound_delivery", brand__id__exact=brand, customer=ref),
            )
        )
    links.append(("Delivery attempts", logs_url(brand=brand, direction="outbound", customer=ref)))
    links.append(("Everything, newest first", logs_url(brand=brand, customer=ref)))
    return [(label, url) for label, url in links if url]


def customer_logs_panel(customer):
    return format_html(
        '<ul class="hh-customer-logs">{}</ul>',
        format_html_join(
            "", '<li><a href="{}">{}</a></li>', ((url, label) for label, url in customer_log_links(customer))
        ),
    )
