"""Lookup sources in the admin: the brand's sources (secrets write-only, counts of
recent calls), the read-only log of their calls, the customers kept from them,
and the "Test a lookup" page."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.forms.fields import InvalidJSONInput
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from hub import scoping
from hub.history import BrandScopedHistoryAdmin
from hub.tenancy import BrandScopedAdmin

from . import preview, selectors
from .models import SECRET_FIELDS, KeptCustomer, LookupSource, SourceCall

FORM_ONLY_FIELDS = ("clear_secrets",)


class IndentedJSONField(forms.JSONField):
    """The mapping shown one path per line, as admins read and edit it."""

    def prepare_value(self, value):
        if isinstance(value, InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False, cls=self.encoder)


class LookupSourceForm(forms.ModelForm):
    """Secrets are write-only: blank keeps the stored value; never rendered back."""

    clear_secrets = forms.BooleanField(
        required=False, label="remove stored password and API key", help_text="Tick to delete them."
    )

    mapping = IndentedJSONField(
        label="mapping", help_text=LookupSource._meta.get_field("mapping").help_text, initial=dict
    )

    class Meta:
        model = LookupSource
        fields = [
            "brand",
            "name",
            "enabled",
            "order",
            "kind",
            "method",
            "url",
            "headers",
            "body",
            "verify_ssl",
            "timeout_ms",
            "auth_type",
            "auth_username",
            "auth_password",
            "api_key_header",
            "api_key",
            "mapping",
            "keep_as_customer",
            "cache_seconds",
            "stale_seconds",
            "negative_cache_seconds",
        ]
        widgets = {
            **{
                name: forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
                for name in SECRET_FIELDS
            },
            "url": forms.TextInput(attrs={"size": 100}),
            "headers": forms.Textarea(attrs={"rows": 3, "cols": 100, "style": "font-family: monospace"}),
            "body": forms.Textarea(attrs={"rows": 5, "cols": 100, "style": "font-family: monospace"}),
            "mapping": forms.Textarea(attrs={"rows": 14, "cols": 100, "style": "font-family: monospace"}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in SECRET_FIELDS:
            if name in self.fields:
                stored = bool(self.instance.pk and getattr(self.instance, name))
                self.fields[name].help_text = (
                    "A value is stored (hidden). Leave blank to keep it." if stored else "Not set."
                ) + " Encrypted at rest; never shown or logged."
                self.initial[name] = ""

    def clean(self):
        data = super().clean()
        for name in SECRET_FIELDS:
            if not data.get(name) and self.instance.pk and not data.get("clear_secrets"):
                data[name] = getattr(self.instance, name)
                setattr(self.instance, name, data[name])
        return data


@admin.register(LookupSource)
class LookupSourceAdmin(BrandScopedHistoryAdmin):
    form = LookupSourceForm
    secret_fields = SECRET_FIELDS
    list_display = ["name", "brand", "order", "enabled", "method", "timeout_ms", "keep_as_customer", "calls_7d"]
    list_filter = ["enabled", "brand"]
    search_fields = ["name", "url"]
    readonly_fields = ["recent_calls"]
    fieldsets = [
        (None, {"fields": ["brand", "name", "enabled", "order", "kind"]}),
        (
            "HTTP request",
            {
                "fields": ["method", "url", "headers", "body", "verify_ssl", "timeout_ms"],
                "description": "Tags: {{ phone }} (E.164), {{ phone_national }}, {{ email }}, {{ customer_id }}. "
                "The source is asked only for the kinds of lookup its tags name.",
            },
        ),
        (
            "Authentication",
            {
                "fields": ["auth_type", "auth_username", "auth_password", "api_key_header", "api_key", "clear_secrets"],
                "description": "Secrets are encrypted, never shown again and masked in every log.",
            },
        ),
        ("Answer", {"fields": ["mapping", "keep_as_customer"]}),
        ("Cache", {"fields": ["cache_seconds", "stale_seconds", "negative_cache_seconds"]}),
        ("Calls (last 7 days)", {"fields": ["recent_calls"]}),
    ]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        masked = "stored_secrets" in [name for _, options in fieldsets for name in options.get("fields", ())]
        out = []
        for title, options in fieldsets:
            fields = [
                name
                for name in options["fields"]
                if not (masked and name in FORM_ONLY_FIELDS) and not (obj is None and name == "recent_calls")
            ]
            if fields:
                out.append((title, {**options, "fields": fields}))
        return out

    def get_urls(self):
        own = [
            path("test-lookup/", self.admin_site.admin_view(self.test_lookup_view), name="sources_lookupsource_test"),
        ]
        return own + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "test_url": reverse("admin:sources_lookupsource_test")}
        return super().changelist_view(request, extra_context)

    def _stats_for(self, obj) -> dict:
        return selectors.source_stats(source_ids=[obj.pk]).get(obj.pk, {})

    @admin.display(description="calls (7 days)")
    def calls_7d(self, obj):
        stats = self._stats_for(obj)
        if not stats:
            return "—"
        return (
            f"{stats['calls']}: {stats['hits']} found, {stats['misses']} not found, "
            f"{stats['timeouts']} timeouts, {stats['errors']} errors"
        )

    @admin.display(description="calls")
    def recent_calls(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        stats = self._stats_for(obj)
        logs = reverse("admin:sources_sourcecall_changelist") + f"?source__id__exact={obj.pk}"
        test = reverse("admin:sources_lookupsource_test") + f"?brand={obj.brand_id}"
        if not stats:
            return format_html(
                'No calls in the last 7 days. <a href="{}">All calls</a> · <a href="{}">Test a lookup…</a>', logs, test
            )
        cells = [
            ("calls", stats["calls"]),
            ("found", stats["hits"]),
            ("not found", stats["misses"]),
            ("timeouts", stats["timeouts"]),
            ("errors", stats["errors"]),
            ("average", f"{stats['avg_ms'] or 0:.0f} ms"),
            ("slowest", f"{stats['max_ms'] or 0:.0f} ms"),
            ("last call", stats["last"].strftime("%Y-%m-%d %H:%M:%S") if stats["last"] else "—"),
        ]
        table = format_html_join(
            "",
            '<span class="hh-stat" data-stat="{}"><b>{}</b> {}</span> · ',
            ((label, value, label) for label, value in cells),
        )
        return format_html(
            '<div id="hh-source-stats">{}<a href="{}">the calls in the Logs</a> · <a href="{}">Test a lookup…</a></div>',
            table,
            logs,
            test,
        )

    def test_lookup_view(self, request):
        """Test a lookup: the brands the user may view; the exact answer the platform would get."""
        if not scoping.has_brands(user=request.user, action=scoping.VIEW) or not request.user.is_staff:
            raise PermissionDenied
        brands = list(scoping.brands(user=request.user, action=scoping.VIEW).order_by("name"))
        data = request.GET
        chosen = data.get("brand", "")
        if chosen:
            brand = next((b for b in brands if str(b.pk) == chosen), None)
        else:
            brand = brands[0] if len(brands) == 1 else None
        platform = data.get("platform", "omnidesk")
        kind = data.get("kind", "auto")
        value = (data.get("value") or "").strip()[:254]
        context = {
            **self.admin_site.each_context(request),
            "title": "Test a lookup",
            "opts": self.model._meta,
            "brands": brands,
            "brand": brand,
            "platforms": preview.PLATFORMS,
            "kinds": preview.KIND_CHOICES,
            "platform": platform,
            "kind": kind,
            "value": value,
            "fresh": bool(data.get("fresh")),
        }
        if value and chosen and brand is None:
            raise PermissionDenied  # a brand the user may not view (or none): nothing is looked up
        if value and brand is not None:
            if platform not in dict(preview.PLATFORMS) or kind not in dict(preview.KIND_CHOICES):
                context["error"] = "Choose a platform and a kind of value."
            else:
                result = preview.lookup_preview(
                    brand=brand, platform=platform, value=value, kind=kind, use_cache=not context["fresh"]
                )
                context["result"] = result
                context["attempts"] = preview.attempt_rows(result.chain)
                context["error"] = result.error
        return TemplateResponse(request, "admin/sources/test_lookup.html", context)


@admin.register(SourceCall)
class SourceCallAdmin(BrandScopedAdmin):
    """The lookup source calls in the Logs: read-only, masked before they were stored."""

    list_display = [
        "started_at",
        "brand",
        "source_name",
        "reason",
        "key_kind",
        "key_value",
        "outcome_badge",
        "response_status",
        "duration_ms",
    ]
    list_filter = ["outcome", "reason", "brand", "source"]
    date_hierarchy = "started_at"
    search_fields = ["key_value", "source_name"]
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

    @admin.display(description="outcome", ordering="outcome")
    def outcome_badge(self, obj):
        colour = {"hit": "#2e7d32", "miss": "#555", "timeout": "#e69500", "error": "#c62828"}.get(obj.outcome, "#555")
        return format_html('<b style="color: {}">{}</b>', colour, obj.get_outcome_display())


@admin.register(KeptCustomer)
class KeptCustomerAdmin(BrandScopedAdmin):
    """Customers stored from a lookup source's answer (keep_as_customer)."""

    list_display = ["customer", "source_name", "created_at"]
    list_filter = ["source_name"]
    search_fields = ["customer__customer_id"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False
