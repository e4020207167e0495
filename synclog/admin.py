"""The Logs admin: read-only lists of inbound calls and outbound delivery attempts,
with the shared filters (synclog.filters), a request/response detail page and a
streamed CSV of the filtered list. Nobody adds, changes or deletes a log row here,
superusers included; auditors and admins see the rows of their brands only."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseBadRequest
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from hub.tenancy import BrandScopedAdmin

from . import detail, exports
from .filters import (
    INBOUND,
    OUTBOUND,
    CustomerFilter,
    DateRangeFilter,
    EventFilter,
    IntegrationFilter,
    OutcomeFilter,
    SourceFilter,
    for_direction,
    search_q,
)
from .models import DeliveryAttempt, InboundRequest


class ReadOnlyLogAdmin(BrandScopedAdmin):
    """Log rows are append-only: nobody adds, changes or deletes them here."""

    direction = INBOUND
    change_list_template = "admin/synclog/change_list.html"
    export_prefix = "logs"
    # Searched with synclog.filters.search_q (get_search_results); listed so the box shows.
    search_fields = ["note"]
    list_per_page = 50
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_search_results(self, request, queryset, search_term):
        return queryset.filter(search_q(self.direction, search_term, user=request.user)), False

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("export.csv", self.admin_site.admin_view(self.export_view), name=f"{info[0]}_{info[1]}_export"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        query = request.GET.copy()
        query.pop("p", None)
        info = self.opts.app_label, self.opts.model_name
        extra_context = {
            **(extra_context or {}),
            "export_url": reverse(f"admin:{info[0]}_{info[1]}_export") + (f"?{query.urlencode()}" if query else ""),
            "logs_url": reverse("synclog-logs"),
        }
        return super().changelist_view(request, extra_context)

    def export_view(self, request):
        """The CSV of exactly what the list shows (filters, search, date hierarchy, the user's brands)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseBadRequest("These filters are not valid for this list.")
        return exports.csv_response(
            exports.export_filename(self.export_prefix), self.export_header, self.export_rows(changelist.queryset)
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """Read-only for everyone: the request and the response side by side."""
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(f"No {self.opts.verbose_name} with this id.")
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        request.current_app = self.admin_site.name
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": obj,
            "title": str(obj),
            "subtitle": None,
            "detail": self.detail(obj),
            "changelist_url": reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/synclog/log_detail.html", context)


@admin.register(InboundRequest)
class InboundRequestAdmin(ReadOnlyLogAdmin):
    direction = INBOUND
    export_prefix = "inbound-requests"
    export_header = exports.INBOUND_HEADER
    search_help_text = "Customer ID, path or query, endpoint, note (e.g. ticketID=…), key prefix or client address."
    list_display = [
        "created_at",
        "brand",
        "endpoint",
        "method",
        "status_badge",
        "latency_ms",
        "customers_returned",
        "customer_link",
        "note",
    ]
    list_filter = [
        "brand",
        for_direction(IntegrationFilter, INBOUND),
        for_direction(OutcomeFilter, INBOUND),
        for_direction(DateRangeFilter, INBOUND),
        for_direction(CustomerFilter, INBOUND),
        for_direction(EventFilter, INBOUND),
    ]
    date_hierarchy = "created_at"
    list_select_related = ["brand", "customer"]

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return format_html('<span class="hh-status {}">{}</span>', "hh-ok" if obj.succeeded else "hh-bad", obj.status)

    @admin.display(description="customer")
    def customer_link(self, obj):
        customer = obj.customer if obj.customer_id else None
        if customer is None:
            return "—"
        url = reverse("admin:customers_customer_change", args=[customer.pk])
        return format_html('<a href="{}">{}</a>', url, customer.customer_id)

    def export_rows(self, queryset):
        return exports.inbound_csv(queryset)

    def detail(self, obj):
        return detail.inbound_detail(obj)


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(ReadOnlyLogAdmin):
    direction = OUTBOUND
    export_prefix = "delivery-attempts"
    export_header = exports.ATTEMPT_HEADER
    search_help_text = "Customer ID, URL, message id (msg_…), sync or rule name, event type, error or note."
    list_display = [
        "started_at",
        "brand",
        "source",
        "event",
        "number",
        "method",
        "status_badge",
        "duration_ms",
        "delivery_link",
    ]
    list_filter = [
        "brand",
        for_direction(IntegrationFilter, OUTBOUND),
        SourceFilter,
        for_direction(OutcomeFilter, OUTBOUND),
        "method",
        for_direction(DateRangeFilter, OUTBOUND),
        for_direction(CustomerFilter, OUTBOUND),
    ]
    date_hierarchy = "started_at"
    list_select_related = ["brand", "delivery"]

    @admin.display(description="source", ordering="delivery__source_name")
    def source(self, obj):
        return obj.delivery.source_name

    @admin.display(description="event", ordering="delivery__event_type")
    def event(self, obj):
        return obj.delivery.event_type

    @admin.display(description="status", ordering="response_status")
    def status_badge(self, obj):
        text = obj.response_status or (obj.error[:40] if obj.error else "no answer")
        return format_html('<span class="hh-status {}">{}</span>', "hh-ok" if obj.succeeded else "hh-bad", text)

    @admin.display(description="delivery")
    def delivery_link(self, obj):
        url = reverse("admin:outbound_delivery_change", args=[obj.delivery_id])
        return format_html('<a href="{}">{}</a>', url, obj.delivery.message_id)

    def export_rows(self, queryset):
        return exports.attempts_csv(queryset)

    def detail(self, obj):
        return detail.attempt_detail(obj)
