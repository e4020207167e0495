"""Inbound events in the admin: read-only, filterable, with "Reprocess selected".

Each event shows the body exactly as received (and its headers, secrets
masked) next to the payload the interpreter read, and why it is not on a
timeline (state invalid / failed / unmatched, with the reason)."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from hub.tenancy import BrandScopedAdmin
from synclog.detail import logs_url
from synclog.filters import CustomerFilter, DateRangeFilter

from . import services
from .models import InboundEvent


class ReceivedFilter(DateRangeFilter):
    """From/to on the time the hub stored the event (the log lists' date filter)."""

    time_field = "received_at"


@admin.register(InboundEvent)
class InboundEventAdmin(BrandScopedAdmin):
    """Every call log and service hook as received; invalid, failed and
    unmatched events stay here for admins to see (and reprocess)."""

    list_display = ["received_at", "brand", "source", "state", "summary", "customer_link", "attempts"]
    list_filter = ["state", "source", "event_type", "brand", ReceivedFilter, CustomerFilter]
    date_hierarchy = "received_at"
    search_fields = ["summary", "contact_number", "customer_repr", "idempotency_key"]
    list_select_related = ["brand", "customer"]
    actions = ["reprocess"]
    fieldsets = [
        (None, {"fields": ["brand", "source", "event_type", "received_at", "state", "attempts", "processed_at"]}),
        (
            "Outcome",
            {
                "fields": [
                    "summary",
                    "contact_number",
                    "customer",
                    "customer_repr",
                    "customer_created",
                    "activity",
                    "emitted",
                    "error",
                ]
            },
        ),
        (
            "As received",
            {"fields": ["idempotency_key", "content_hash", "body_pretty", "headers_pretty", "payload_pretty"]},
        ),
        ("Logs", {"fields": ["log_links"]}),
    ]

    @admin.display(description="customer", ordering="customer_repr")
    def customer_link(self, obj):
        if obj.customer_id and obj.customer is not None:
            url = reverse("admin:customers_customer_change", args=[obj.customer_id])
            return format_html('<a href="{}">{}</a>', url, obj.customer_repr or obj.customer_id)
        return obj.customer_repr or "—"

    @admin.display(description="log rows")
    def log_links(self, obj):
        """The inbound call that delivered this event, and the customer's other log rows."""
        links = [("The inbound call", logs_url(brand=obj.brand_id, direction="inbound", event=obj.pk))]
        if obj.customer_id and obj.customer is not None:
            ref = obj.customer.customer_id
            links.append(
                ("Inbound calls of this customer", logs_url(brand=obj.brand_id, direction="inbound", customer=ref))
            )
            links.append(
                (
                    "Deliveries to webhooks for this customer",
                    logs_url(brand=obj.brand_id, direction="outbound", customer=ref),
                )
            )
        return format_html_join(" · ", '<a href="{}">{}</a>', ((url, label) for label, url in links))

    @admin.display(description="payload (as interpreted)")
    def payload_pretty(self, obj):
        return format_html(
            "<pre style='white-space:pre-wrap'>{}</pre>", json.dumps(obj.payload, indent=2, ensure_ascii=False)
        )

    @admin.display(description="body (exactly as received)")
    def body_pretty(self, obj):
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", obj.body)

    @admin.display(description="headers (secrets masked)")
    def headers_pretty(self, obj):
        return format_html(
            "<pre style='white-space:pre-wrap'>{}</pre>",
            "\n".join(f"{name}: {value}" for name, value in (obj.headers or {}).items()),
        )

    def get_readonly_fields(self, request, obj=None):
        return [name for fieldset in self.fieldsets for name in fieldset[1]["fields"]]

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        # Nothing is editable; "change" is what the reprocess action needs.
        return super().has_change_permission(request, obj)

    @admin.action(description="Reprocess selected events (invalid, failed, unmatched)", permissions=["change"])
    def reprocess(self, request, queryset):
        counts = services.inbound_events_reprocess(events=list(queryset.select_related("brand")))
        text = ", ".join(f"{count} {state}" for state, count in sorted(counts.items())) or "nothing to do"
        level = messages.WARNING if counts.get("failed") else messages.SUCCESS
        self.message_user(request, f"Reprocessed: {text}.", level)
