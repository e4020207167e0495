"""Dispatcher rules in the admin: grouped as EddyDesk groups a webhook, secrets
write-only, presets to start from, and a preview against a stored event."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from customers.models import Customer
from hooks.inbound.models import InboundEvent
from hooks.inbound.selectors import inbound_event_get, inbound_events_for_brand
from hooks.outbound.admin import (
    DeliveryHealthColumns,
    MaskedRequestFields,
    destinations_reenable,
    health_last_html,
    health_rate_html,
)
from hooks.outbound.engine.health import health_by_source
from hooks.outbound.models import SECRET_FIELDS
from hooks.outbound.recovery_admin import recover_since_action
from hooks.outbound.selectors import source_health
from hub import redaction, scoping
from hub.events import EVENT_TYPES
from hub.history import BrandScopedHistoryAdmin

from . import services
from .conditions import ConditionError, conditions_clean
from .models import EventRule
from .presets import PRESETS


# Shown in place of the plain field when the page is read-only (secrets masked).
class ConditionsField(forms.CharField):
    """The conditions as JSON text (objects or text tests); normalized on save."""

    widget = forms.Textarea(attrs={"rows": 6, "cols": 90, "style": "font-family: monospace"})

    def prepare_value(self, value):
        if isinstance(value, (dict, list)):
            return json.dumps(value, indent=2, ensure_ascii=False)
        return value

    def to_python(self, value):
        text = (value or "").strip()
        if not text:
            return {"all": []}
        try:
            raw = json.loads(text) if text[0] in "{[" else text
        except json.JSONDecodeError as exc:
            raise ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}).") from exc
        try:
            return conditions_clean(raw)
        except ConditionError as exc:
            raise ValidationError(exc.errors) from exc


class EventRuleForm(forms.ModelForm):
    event_types = forms.MultipleChoiceField(
        label="trigger events",
        choices=EVENT_TYPES,
        widget=forms.CheckboxSelectMultiple,
        help_text="The hub events that trigger the rule.",
    )
    conditions = ConditionsField(
        required=False,
        help_text='Empty: always. e.g. {"all": ["event.queue == \\"Sales\\"", "call.duration > 60000", '
        '{"any": ["customer.customFields.customerType == \\"unlimited\\"", "event.timeInQueue >= 120"]}]}. '
        "Operators: == != contains, not contains, > >= < <=, in, not in, matches (regex), exists; "
        "fields under event., customer., call.",
    )

    class Meta:
        model = EventRule
        fields = [  # every editable field, in the fieldsets' order
            "brand",
            "name",
            "enabled",
            "order",
            "description",
            "event_types",
            "conditions",
            "method",
            "url",
            "body_format",
            "headers",
            "body",
            "auth_type",
            "auth_username",
            "auth_password",
            "api_key_header",
            "api_key",
            "signing_secret",
            "verify_ssl",
            "timeout_seconds",
            "rate_limit_per_second",
            "stop_on_4xx",
        ]
        widgets = {
            name: forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
            for name in SECRET_FIELDS
        } | {
            "url": forms.TextInput(attrs={"size": 90}),
            "body": forms.Textarea(attrs={"rows": 10, "cols": 90, "style": "font-family: monospace"}),
            "headers": forms.Textarea(attrs={"rows": 3, "cols": 90, "style": "font-family: monospace"}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in SECRET_FIELDS:
            if name in self.fields:
                self.fields[name].required = False
                if self.instance.pk and getattr(self.instance, name):
                    self.fields[name].help_text = "Set. Leave empty to keep it; type a new value to replace it."

    def clean(self):
        cleaned = super().clean()
        # Secrets are write-only: an empty box keeps the stored value.
        for name in SECRET_FIELDS:
            if name in self.fields and not cleaned.get(name) and self.instance.pk:
                cleaned[name] = getattr(self.instance, name)
                setattr(self.instance, name, cleaned[name])
        return cleaned


@admin.register(EventRule)
class EventRuleAdmin(MaskedRequestFields, DeliveryHealthColumns, BrandScopedHistoryAdmin):
    """History (who changed what, when) is browsable by the brand's auditors;
    secrets are masked for them and never enter the history."""

    form = EventRuleForm
    secret_fields = SECRET_FIELDS
    list_display = [
        "name",
        "brand",
        "enabled",
        "order",
        "triggers",
        "conditions_text",
        "webhook",
        "destination_health",
        "last_result",
        "success_24h",
    ]
    list_display_links = ["name"]
    list_editable = ["enabled", "order"]
    list_filter = ["enabled", "brand", "method", "body_format"]
    # Not the URL: searching it would let an auditor guess a key typed into an
    # old rule's URL one character at a time, though the page shows it masked.
    search_fields = ["name", "description"]
    list_select_related = ["brand"]
    actions = ["enable", "disable", "reenable", "recover_since"]
    recover_since = recover_since_action(source_kind="rule")
    change_form_template = "admin/rules/eventrule/change_form.html"
    change_list_template = "admin/rules/eventrule/change_list.html"
    fieldsets = [
        (None, {"fields": ["brand", "name", "enabled", "order", "description"]}),
        (
            "When",
            {
                "fields": ["event_types", "conditions"],
                "description": "The rule fires for each trigger event whose conditions hold (see docs/rules.md).",
            },
        ),
        (
            "Webhook",
            {
                "fields": ["method", "url", "body_format", "headers", "body"],
                "description": "Tags are Jinja2 templates: {{ customer.name }}, {{ customer.admin_url }}, "
                "{{ event.queue }}, {{ event.summary }}, {{ call.duration }}; values are escaped for the "
                "data format.",
            },
        ),
        ("Authentication", {"fields": ["auth_type", "auth_username", "auth_password", "api_key_header", "api_key"]}),
        ("Signing and SSL", {"fields": ["signing_secret", "verify_ssl", "timeout_seconds"]}),
        (
            "Rate limit and retries",
            {
                "fields": ["rate_limit_per_second", "stop_on_4xx"],
                "description": "See docs/outbound-webhooks.md, Rate limits and retries.",
            },
        ),
    ]

    @staticmethod
    def page_health(rules: list) -> None:
        health = source_health(source_kind="rule", source_ids=[rule.pk for rule in rules])
        states = health_by_source(source_kind="rule", source_ids=[rule.pk for rule in rules])
        for rule in rules:
            rule.health = health[rule.pk]
            rule.destination_health = [states[rule.pk]] if rule.pk in states else []

    @admin.action(description="Re-enable (disabled for failing: resume paused deliveries)", permissions=["change"])
    def reenable(self, request, queryset):
        resumed = destinations_reenable(source_kind="rule", source_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Re-enabled; {resumed} paused deliveries resumed in order.")

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        if "stored_secrets" in flatten_fieldsets(fieldsets):
            # Read-only (an auditor, a history version): a key typed into the URL or
            # headers of a rule saved before that was refused is shown masked.
            fieldsets = [
                (title, {**options, "fields": [self.MASKED_FIELDS.get(f, f) for f in options["fields"]]})
                for title, options in fieldsets
            ]
        return [("Recent deliveries", {"fields": ["delivery_health"]}), *fieldsets]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        return [
            *readonly,
            *(name for name in ("delivery_health", *self.MASKED_FIELDS.values()) if name not in readonly),
        ]

    @admin.display(description="at a glance")
    def delivery_health(self, obj):
        """The newest delivery's outcome, the success rate, and a link to this rule's attempts."""
        from synclog.detail import logs_url

        if obj is None or obj.pk is None:
            return "—"
        health = source_health(source_kind="rule", source_ids=[obj.pk])[obj.pk]
        week = source_health(source_kind="rule", source_ids=[obj.pk], since_hours=24 * 7)[obj.pk]
        return format_html(
            'Last delivery: {} · success in 24 h: {} · in 7 days: {} · <a href="{}">all attempts in the logs</a>',
            health_last_html(health),
            health_rate_html(health),
            health_rate_html(week),
            logs_url(brand=obj.brand_id, source=f"rule:{obj.pk}"),
        )

    @admin.display(description="webhook", ordering="url")
    def webhook(self, obj):
        shown = redaction.redact_url(obj.url)
        url = shown if len(shown) <= 60 else shown[:57] + "…"
        return f"{obj.method} {url}"

    @admin.display(description="trigger events")
    def triggers(self, obj):
        return ", ".join(obj.event_types or [])

    @admin.action(description="Enable selected rules", permissions=["change"])
    def enable(self, request, queryset):
        self.message_user(request, f"Enabled {self._set_enabled(queryset, True)} rules.")

    @admin.action(description="Disable selected rules", permissions=["change"])
    def disable(self, request, queryset):
        self.message_user(request, f"Disabled {self._set_enabled(queryset, False)} rules.")

    @staticmethod
    def _set_enabled(queryset, enabled: bool) -> int:
        """One save per rule (not a bulk update), so each change is in the rule's history."""
        changed = 0
        for rule in queryset.filter(enabled=not enabled):
            rule.enabled = enabled
            rule.save(update_fields=["enabled", "updated_at"])
            changed += 1
        return changed

    def get_urls(self):
        own = [
            path("presets/", self.admin_site.admin_view(self.presets_view), name="rules_eventrule_presets"),
            path("<int:pk>/preview/", self.admin_site.admin_view(self.preview_view), name="rules_eventrule_preview"),
        ]
        return own + super().get_urls()

    def presets_view(self, request):
        """The documented presets; "Use" creates a disabled rule and opens it."""
        if not self.has_add_permission(request):
            raise Http404
        brands = scoping.brands(user=request.user, action=scoping.CHANGE)
        if request.method == "POST":
            brand = brands.filter(pk=request.POST.get("brand") or 0).first()
            key = request.POST.get("preset", "")
            if brand is None or key not in PRESETS:
                messages.error(request, "Choose a brand and a preset.")
            else:
                rule = services.rule_create_from_preset(brand=brand, preset=key)
                messages.success(
                    request, f"Created the disabled rule “{rule.name}”. Fill in the placeholders, preview, enable."
                )
                return HttpResponseRedirect(reverse("admin:rules_eventrule_change", args=[rule.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": "Start a rule from a preset",
            "opts": self.model._meta,
            "presets": [
                {"key": key, **preset, "body": preset["rule"]["body"], "url": preset["rule"]["url"]}
                for key, preset in PRESETS.items()
            ],
            "brands": brands,
        }
        return TemplateResponse(request, "admin/rules/eventrule/presets.html", context)

    def preview_view(self, request, pk: int):
        """Dry run: which conditions match a stored event (or a customer), and
        the exact request that would be sent. Nothing is sent or stored."""
        rule = self.get_queryset(request).filter(pk=pk).first()
        if rule is None or not self.has_view_permission(request, rule):
            raise Http404
        inbound_types = [t for t in rule.event_types if not t.startswith("customer.")]
        events = list(inbound_events_for_brand(brand=rule.brand_id, event_types=inbound_types or None)[:50])
        preview = None
        chosen_event = chosen_customer = None
        error = ""
        try:
            if request.GET.get("event"):
                chosen_event = inbound_event_get(brand=rule.brand_id, pk=int(request.GET["event"]))
                if chosen_event is None:
                    raise Http404
                preview = services.rule_preview_inbound_event(rule=rule, inbound_event=chosen_event)
            elif request.GET.get("customer"):
                chosen_customer = Customer.objects.filter(
                    brand_id=rule.brand_id, customer_id=request.GET["customer"].strip()
                ).first()
                if chosen_customer is None:
                    error = "No customer of this brand has that customer ID."
                else:
                    event_type = next((t for t in rule.event_types if t.startswith("customer.")), "customer.updated")
                    preview = services.rule_preview_customer(rule=rule, customer=chosen_customer, event_type=event_type)
        except (ValueError, ValidationError) as exc:
            error = str(exc)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Preview “{rule.name}”",
            "opts": self.model._meta,
            "original": rule,
            "rule": rule,
            "events": events,
            "chosen_event": chosen_event,
            "chosen_customer": chosen_customer,
            "preview": preview,
            "context_json": json.dumps(preview.context, indent=2, ensure_ascii=False, default=str) if preview else "",
            "error": error,
            "event_model": InboundEvent._meta,
        }
        return TemplateResponse(request, "admin/rules/eventrule/preview.html", context)
