"""The Logs admin: read-only lists of inbound calls and outbound delivery attempts."""

from __future__ import annotations

from django.contrib import admin

from hub.tenancy import BrandScopedAdmin

from .models import DeliveryAttempt, InboundRequest


class ReadOnlyLogAdmin(BrandScopedAdmin):
    """Log rows are append-only: nobody adds, changes or deletes them here."""

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(InboundRequest)
class InboundRequestAdmin(ReadOnlyLogAdmin):
    list_display = ["created_at", "brand", "endpoint", "method", "status", "latency_ms", "customers_returned", "note"]
    list_filter = ["endpoint", "status", "brand"]
    search_fields = ["path", "note", "credential_prefix"]
    date_hierarchy = "created_at"


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(ReadOnlyLogAdmin):
    list_display = [
        "started_at",
        "brand",
        "delivery",
        "number",
        "method",
        "response_status",
        "succeeded",
        "duration_ms",
    ]
    list_filter = ["succeeded", "response_status", "method", "delivery__source_kind", "brand"]
    search_fields = ["url", "error", "delivery__message_id", "delivery__source_name"]
    date_hierarchy = "started_at"
    list_select_related = ["brand", "delivery"]

    def lookup_allowed(self, lookup, value, request=None):
        # The log dashboard links here with ?delivery__brand__id__exact=<brand>.
        return lookup.startswith("delivery__brand") or super().lookup_allowed(lookup, value, request)
