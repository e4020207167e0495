"""CRM syncs in the admin as Deskpro's four tabs (Create Users, Update Users,
Delete Users, Logs), secrets write-only, "Send a test" with a dry-run preview,
"Retry now" on failed deliveries; the delivery list with filters."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from hub import admin_panels, redaction
from hub.history import BrandScopedHistoryAdmin
from hub.tenancy import BrandScopedAdmin, BrandScopedInline
from synclog.detail import changelist_url
from synclog.filters import OUTBOUND, CustomerFilter, DateRangeFilter, SourceFilter, for_direction
from synclog.models import DeliveryAttempt

from . import crm, selectors
from .engine import health as hookhealth
from .engine import outbox
from .models import (
    ACTION_ENABLED_DEFAULTS,
    CrmAction,
    CrmSync,
    CrmSyncAction,
    Delivery,
    DeliveryState,
    HealthState,
    OperationalWebhook,
    RemoteId,
)
from .recovery_admin import deliveries_job, recover_since_action
from .rendering import RenderError, render_request

SYNC_SECRETS = ("auth_password", "api_key")


def _secret_widgets() -> dict:
    return {
        name: forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}) for name in SYNC_SECRETS
    }


class WriteOnlySecretsForm(forms.ModelForm):
    """Secrets (password, API key) are write-only: blank keeps the stored value,
    "clear_secrets" deletes it; never rendered back. Bearer and API key
    authentication need a key. Used by the sync and by each tab's own authentication."""

    clear_secrets = forms.BooleanField(
        required=False, label="remove stored password and API key", help_text="Tick to delete them."
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in SYNC_SECRETS:
            if name in self.fields:
                stored = bool(self.instance.pk and getattr(self.instance, name))
                self.fields[name].help_text = (
                    "A value is stored (hidden). Leave blank to keep it." if stored else "Not set."
                ) + " Encrypted at rest."
                self.initial[name] = ""

    def auth_in_use(self, data: dict) -> bool:
        return True

    def clean(self):
        data = super().clean()
        for name in SYNC_SECRETS:
            if not data.get(name) and self.instance.pk and not data.get("clear_secrets"):
                data[name] = getattr(self.instance, name)
        if self.auth_in_use(data):
            if data.get("auth_type") == "bearer" and not data.get("api_key"):
                self.add_error("api_key", "A bearer token is needed for bearer authentication.")
            if data.get("auth_type") == "api_key" and not data.get("api_key"):
                self.add_error("api_key", "An API key is needed for API key authentication.")
        return data


class CrmSyncForm(WriteOnlySecretsForm):
    """The sync: name, enabled, its authentication (write-only secrets), signing."""

    new_signing_secret = forms.BooleanField(
        required=False,
        label="generate a new signing secret",
        help_text="The hub makes a Standard Webhooks secret (whsec_...) and shows it once after saving.",
    )
    remove_signing_secret = forms.BooleanField(required=False, label="stop signing requests")

    class Meta:
        model = CrmSync
        fields = [
            "brand",
            "name",
            "enabled",
            "auth_type",
            "auth_username",
            "auth_password",
            "api_key_header",
            "api_key",
        ]
        widgets = _secret_widgets()


# A tab's own authentication (Deskpro lists authentication on every tab).
TAB_AUTH_FORM_FIELDS = ["use_sync_auth", *crm.TAB_AUTH_FIELDS]


class ActionForm(WriteOnlySecretsForm):
    class Meta:
        model = CrmSyncAction
        fields = [
            "enabled",
            "unique_id_path",
            "method",
            "url",
            "headers",
            "body",
            "body_format",
            "verify_ssl",
            "timeout_seconds",
            *TAB_AUTH_FORM_FIELDS,
            "rate_limit_per_second",
            "stop_on_4xx",
        ]
        widgets = {
            "url": forms.TextInput(attrs={"size": 100}),
            "headers": forms.Textarea(attrs={"rows": 3, "cols": 100, "style": "font-family: monospace"}),
            "body": forms.Textarea(attrs={"rows": 8, "cols": 100, "style": "font-family: monospace"}),
            **_secret_widgets(),
        }

    action_kind = ""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.action = self.action_kind
        if self.instance.pk is None:
            # A new tab starts as Deskpro's does (Create and Delete on, Update off).
            self.initial["enabled"] = ACTION_ENABLED_DEFAULTS.get(self.action_kind, False)
        if "auth_type" in self.fields:
            self.fields["auth_type"].required = False  # blank: none (only read when the tab has its own)

    def clean_auth_type(self):
        return self.cleaned_data.get("auth_type") or "none"

    def auth_in_use(self, data: dict) -> bool:
        return not data.get("use_sync_auth")


# Shown in place of the plain field when the action is read-only (secrets masked).
class MaskedRequestFields:
    """The URL, headers and data of a webhook request configuration, shown masked
    (hub.redaction) in place of the fields to someone who may not change them: a
    key typed into an old configuration, before that was refused on save, stays
    hidden. Used by the CRM sync action tabs and the dispatcher rules."""

    MASKED_FIELDS = {"url": "url_masked", "headers": "headers_masked", "body": "body_masked"}

    @admin.display(description="webhook URL")
    def url_masked(self, obj):
        return redaction.redact_url(obj.url)

    @admin.display(description="headers")
    def headers_masked(self, obj):
        return redaction.mask(obj.headers)

    @admin.display(description="data")
    def body_masked(self, obj):
        return redaction.mask(obj.body)


def _action_inline(kind: str, title: str, help_text: str):
    form = type(f"{kind.title()}ActionForm", (ActionForm,), {"action_kind": kind})

    class ActionInline(MaskedRequestFields, BrandScopedInline, admin.StackedInline):
        model = CrmSyncAction
        extra = 1
        max_num = 1
        min_num = 0
        can_delete = False
        verbose_name = title
        verbose_name_plural = title
        fields = [
            name
            for name in [*ActionForm.Meta.fields, "clear_secrets"]
            if kind == CrmAction.CREATE or name != "unique_id_path"
        ]

        def get_queryset(self, request):
            return super().get_queryset(request).filter(action=kind)

        def get_fields(self, request, obj=None):
            if self.has_change_permission(request, obj) and not getattr(request, "_hookhub_read_only", False):
                return self.fields
            # Read-only (an auditor): a key typed into the URL or headers of an
            # action saved before that was refused is shown masked; the tab's
            # own password and API key are never shown.
            return [
                MaskedRequestFields.MASKED_FIELDS.get(name, name)
                for name in self.fields
                if name not in (*SYNC_SECRETS, "clear_secrets")
            ]

        def get_readonly_fields(self, request, obj=None):
            return [*super().get_readonly_fields(request, obj), *self.MASKED_FIELDS.values()]

        def get_formset(self, request, obj=None, **kwargs):
            kwargs["form"] = form
            formset = super().get_formset(request, obj, **kwargs)
            formset.help_text = help_text
            formset.action_kind = kind
            return formset

        def get_extra(self, request, obj=None, **kwargs):
            if obj is not None and obj.actions.filter(action=kind).exists():
                return 0
            return 1

    ActionInline.__name__ = f"{kind.title()}ActionInline"
    return ActionInline


CreateInline = _action_inline(
    CrmAction.CREATE,
    "Sync new user webhook",
    "Unique ID Path: without it, the hub cannot push updates or deletes to this CRM beyond the initial creation.",
)
UpdateInline = _action_inline(CrmAction.UPDATE, "Sync updated user webhook", "Typically PUT to …/{{ remote_id }}.")
DeleteInline = _action_inline(CrmAction.DELETE, "Sync deleted user webhook", "Typically DELETE …/{{ remote_id }}.")


# Form-only switches that make no sense to someone who cannot change the sync.
FORM_ONLY_FIELDS = ("clear_secrets", "new_signing_secret", "remove_signing_secret")


def health_last_html(health: dict | None):
    """The newest delivery's outcome, green or red; shared with the rules list."""
    last = (health or {}).get("last")
    if last is None:
        return "—"
    ok = last.state == DeliveryState.DELIVERED
    text = f"HTTP {last.last_status}" if last.last_status else (last.last_error[:60] or last.get_state_display())
    return format_html(
        '<span style="color: {}">{} {}</span>', "#2e7d32" if ok else "#c62828", last.get_state_display(), text
    )


def health_rate_html(health: dict | None):
    if not health or not health["total"]:
        return "no attempts"
    rate = 100 * health["ok"] / health["total"]
    colour = "#2e7d32" if rate >= 99 else "#e69500" if rate >= 90 else "#c62828"
    return format_html(
        '<span style="color: {}">{}%</span> ({}/{})', colour, f"{rate:.1f}", health["ok"], health["total"]
    )


def destination_health_html(rows: list):
    """The health state of a destination (or the worst of a sync's actions); shared with the rules list."""
    worst = next((r for r in rows if r.state == HealthState.DISABLED), None) or next(
        (r for r in rows if r.state == HealthState.FAILING), None
    )
    if worst is None:
        return format_html('<span style="color: #2e7d32">{}</span>', "Healthy")
    if worst.state == HealthState.DISABLED:
        return format_html(
            '<span style="color: #c62828" title="{}">Disabled</span> (deliveries paused)', worst.disabled_reason
        )
    since = timezone.localtime(worst.first_failure_at).strftime("%Y-%m-%d %H:%M") if worst.first_failure_at else "?"
    return format_html(
        '<span style="color: #e69500" title="{}">Failing</span>: {} in a row since {}',
        worst.last_error[:200],
        worst.consecutive_failures,
        since,
    )


def destinations_reenable(*, source_kind: str, source_ids: list[int]) -> int:
    """The "Re-enable" list action: disabled destinations back on, paused deliveries resumed in order."""
    return sum(hookhealth.destination_reenable(source_kind=source_kind, source_id=pk) for pk in source_ids)


class HealthChangeList(ChangeList):
    """Computes the page's delivery health once (two grouped queries), not per row."""

    def get_results(self, request):
        super().get_results(request)
        self.model_admin.page_health(list(self.result_list))


class DeliveryHealthColumns:
    """List columns "last delivery" and "success (24 h)" for configurations that
    send webhooks; the admin's ``page_health(objects)`` sets ``obj.health``."""

    def get_changelist(self, request, **kwargs):
        return HealthChangeList

    @admin.display(description="last delivery")
    def last_result(self, obj):
        return health_last_html(getattr(obj, "health", None))

    @admin.display(description="success (24 h)")
    def success_24h(self, obj):
        return health_rate_html(getattr(obj, "health", None))

    @admin.display(description="health")
    def destination_health(self, obj):
        return destination_health_html(getattr(obj, "destination_health", []))


@admin.register(CrmSync)
class CrmSyncAdmin(DeliveryHealthColumns, BrandScopedHistoryAdmin):
    """History (who changed what, when) covers the sync and its three webhooks;
    secrets are masked for auditors and never enter the history."""

    form = CrmSyncForm
    secret_fields = ("auth_password", "api_key", "signing_secret")
    change_form_template = "admin/outbound/crmsync/change_form.html"
    list_display = [
        "name",
        "brand",
        "enabled",
        "actions_summary",
        "destination_health",
        "last_result",
        "success_24h",
        "updated_at",
    ]
    list_filter = ["enabled", "brand"]
    actions = ["reenable", "recover_since"]
    search_fields = ["name"]
    inlines = [CreateInline, UpdateInline, DeleteInline]
    recover_since = recover_since_action(source_kind="crm_action")
    fieldsets = [
        (None, {"fields": ["brand", "name", "enabled"]}),
        (
            "Authentication",
            {
                "fields": ["auth_type", "auth_username", "auth_password", "api_key_header", "api_key", "clear_secrets"],
                "description": "Applies to every webhook that uses the sync's authentication (the default; a tab "
                "can set its own). Secrets are encrypted and never shown again.",
            },
        ),
        ("Signing", {"fields": ["new_signing_secret", "remove_signing_secret"]}),
    ]

    @staticmethod
    def page_health(syncs: list) -> None:
        """Attach each sync's delivery health (its actions' deliveries) for the list columns."""
        action_ids = {sync.pk: [a.pk for a in sync.actions.all()] for sync in syncs}
        health = selectors.source_health(
            source_kind="crm_action", source_ids=[pk for ids in action_ids.values() for pk in ids]
        )
        states = hookhealth.health_by_source(
            source_kind="crm_action", source_ids=[pk for ids in action_ids.values() for pk in ids]
        )
        for sync in syncs:
            sync.health = selectors.health_merge([health[pk] for pk in action_ids[sync.pk]])
            sync.destination_health = [states[pk] for pk in action_ids[sync.pk] if pk in states]

    @admin.action(description="Re-enable (disabled for failing: resume paused deliveries)", permissions=["change"])
    def reenable(self, request, queryset):
        # queryset: only syncs of brands the user administers (BrandScopedAdmin.get_action).
        ids = list(CrmSyncAction.objects.filter(sync__in=queryset).values_list("pk", flat=True))
        resumed = destinations_reenable(source_kind="crm_action", source_ids=ids)
        messages.success(request, f"Re-enabled; {resumed} paused deliveries resumed in order.")

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if "stored_secrets" not in flatten_fieldsets(fieldsets):
            return fieldsets
        trimmed = []
        for title, options in fieldsets:
            fields = [name for name in options["fields"] if name not in FORM_ONLY_FIELDS]
            if fields:
                trimmed.append((title, {**options, "fields": fields}))
        return trimmed

    @admin.display(description="webhooks")
    def actions_summary(self, obj):
        enabled = [a.get_action_display() for a in obj.actions.all() if a.enabled]
        return ", ".join(enabled) or "none enabled"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("actions")

    def save_model(self, request, obj, form, change):
        if form.cleaned_data.get("remove_signing_secret"):
            obj.signing_secret = ""
        super().save_model(request, obj, form, change)
        if form.cleaned_data.get("new_signing_secret"):
            secret = crm.crm_sync_set_signing_secret(sync=obj)
            messages.warning(
                request,
                format_html(
                    "New signing secret (shown once, copy it now): <code>{}</code>. "
                    "Receivers verify webhook-signature with it (Standard Webhooks).",
                    secret,
                ),
            )

    def get_urls(self):
        urls = super().get_urls()
        own = [
            path("<int:pk>/send-test/", self.admin_site.admin_view(self.send_test_view), name="outbound_crmsync_test"),
            path("<int:pk>/retry/", self.admin_site.admin_view(self.retry_view), name="outbound_crmsync_retry"),
        ]
        return own + urls

    def _sync_or_404(self, request, pk, *, write: bool) -> CrmSync:
        sync = get_object_or_404(self.get_queryset(request), pk=pk)
        allowed = self.has_change_permission(request, sync) if write else self.has_view_permission(request, sync)
        if not allowed:
            raise PermissionDenied
        return sync

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        sync = self.get_queryset(request).filter(pk=object_id).first() if object_id.isdigit() else None
        if sync is not None:
            extra_context.update(self.logs_context(request, sync))
        return super().change_view(request, object_id, form_url, extra_context)

    def logs_context(self, request, sync: CrmSync) -> dict:
        """The Logs tab: this sync's deliveries and attempts, filters, success rates."""
        deliveries = selectors.crm_sync_deliveries(sync=sync)
        rates = selectors.success_rates(deliveries=deliveries)
        filtered = deliveries
        state = request.GET.get("log_state", "")
        action = request.GET.get("log_action", "")
        days = request.GET.get("log_days", "")
        if state in DeliveryState.values:
            filtered = filtered.filter(state=state)
        if action in CrmAction.values:
            ids = list(sync.actions.filter(action=action).values_list("pk", flat=True))
            filtered = filtered.filter(source_id__in=ids)
        if days.isdigit():
            filtered = filtered.filter(created_at__gte=timezone.now() - timedelta(days=int(days)))
        rows = list(filtered.order_by("-created_at", "-pk").prefetch_related("attempt_log")[:100])
        return {
            "log_rows": rows,
            "log_rates": rates,
            "log_states": DeliveryState.choices,
            "log_actions": CrmAction.choices,
            "log_filter": {"state": state, "action": action, "days": days},
            "log_total": filtered.count(),
            "test_url": reverse("admin:outbound_crmsync_test", args=[sync.pk]),
            "retry_url": reverse("admin:outbound_crmsync_retry", args=[sync.pk]),
            "can_send": self.has_change_permission(request, sync),
        }

    def retry_view(self, request, pk):
        sync = self._sync_or_404(request, pk, write=True)
        if request.method != "POST":
            raise Http404
        wanted = [int(v) for v in request.POST.getlist("delivery_ids") if v.isdigit()]
        ids = list(selectors.crm_sync_deliveries(sync=sync).filter(pk__in=wanted).values_list("pk", flat=True))
        with transaction.atomic():
            count = outbox.deliveries_retry_now(delivery_ids=ids)
        messages.success(request, f"{count} deliveries will be retried now.")
        return HttpResponseRedirect(reverse("admin:outbound_crmsync_change", args=[sync.pk]) + "#logs")

    def send_test_view(self, request, pk):
        """Send a test: pick an action and a customer, see the exact request (dry run), then send it."""
        sync = self._sync_or_404(request, pk, write=True)
        data = request.POST if request.method == "POST" else request.GET
        action_kind = data.get("action", CrmAction.CREATE)
        customer_ref = (data.get("customer") or "").strip()
        context = {
            **self.admin_site.each_context(request),
            "title": f"Send a test — {sync.name}",
            "sync": sync,
            "opts": self.model._meta,
            "actions": CrmAction.choices,
            "chosen_action": action_kind,
            "customer_ref": customer_ref,
        }
        action = sync.actions.filter(action=action_kind).first()
        if customer_ref and action is None:
            context["error"] = "This webhook is not configured yet."
        elif customer_ref:
            snapshot = selectors.customer_snapshot(brand_id=sync.brand_id, customer_ref=customer_ref)
            if snapshot is None:
                context["error"] = f"No customer with ID {customer_ref!r} in {sync.brand}."
            else:
                config = crm.action_with_auth(action)
                remote = sync.remote_ids.filter(customer_pk=snapshot["id"]).first()
                tokens = {
                    **crm.crm_context(event_type=f"customer.{action_kind}d", customer=snapshot),
                    "remote_id": remote.remote_id if remote else "",
                }
                try:
                    rendered = render_request(config, tokens)
                    # Headers the engine sets when it sends, shown as placeholders.
                    engine = {"webhook-signature": "(computed when sent)"} if sync.signing_secret else {}
                    engine["Idempotency-Key"] = engine["webhook-id"] = "(a new message id when sent)"
                    context["preview"] = redaction.request_text(
                        method=rendered.method,
                        url=rendered.url,
                        headers=rendered.headers,
                        body=rendered.body,
                        secrets=redaction.config_secrets(config),
                        engine_headers=engine,
                    )
                except RenderError as exc:
                    context["error"] = f"The request cannot be built: {exc.reason}"
                if request.method == "POST" and data.get("confirm") == "send" and "error" not in context:
                    delivery = crm.crm_sync_test_delivery(action=action, customer_snapshot=snapshot)
                    context["delivery"] = delivery
                    context["attempt"] = delivery.attempt_log.order_by("-pk").first()
        return TemplateResponse(request, "admin/outbound/crmsync/send_test.html", context)


class AttemptInline(BrandScopedInline, admin.TabularInline):
    """Read-only; shown to the delivery's brand members (auditors included)."""

    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = [
        "attempt",
        "started_at",
        "duration_ms",
        "method",
        "url",
        "response_status",
        "error",
        "note",
        "succeeded",
    ]
    # A flat list of names; the stubs type `fields` as fieldset groups (list[str | list[str] | ...]).
    readonly_fields = cast(list[str], fields)
    ordering = ["number"]

    @admin.display(description="attempt")
    def attempt(self, obj):
        """The attempt's number, linking to its request and response side by side."""
        url = reverse("admin:synclog_deliveryattempt_change", args=[obj.pk])
        return format_html('<a href="{}">#{} — request / response</a>', url, obj.number)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class TriedFilter(admin.SimpleListFilter):
    """Tried at least once (with state "pending": waiting to retry) or not tried yet."""

    title = "tried"
    parameter_name = "tried"

    def lookups(self, request, model_admin):
        return [("yes", "tried at least once"), ("no", "not tried yet")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(attempts__gt=0)
        if self.value() == "no":
            return queryset.filter(attempts=0)
        return queryset


@admin.register(Delivery)
class DeliveryAdmin(BrandScopedAdmin):
    """Deliveries (read-only) with "Retry now". The filters are the ones the
    dashboard and the customer's Logs panel link with (only declared filters are accepted)."""

    list_display = ["created_at", "source_name", "event_type", "state", "attempts", "last_status", "next_attempt_at"]
    list_filter = [
        "state",
        "source_kind",
        "event_type",
        "brand",
        TriedFilter,
        for_direction(SourceFilter, OUTBOUND, delivery_path=""),
        for_direction(DateRangeFilter, OUTBOUND, time_field="created_at"),
        for_direction(CustomerFilter, OUTBOUND, delivery_path=""),
    ]
    search_fields = ["source_name", "message_id", "=customer_id"]
    date_hierarchy = "created_at"
    inlines = [AttemptInline]
    actions = ["retry_now", "recover", "replay"]
    readonly_fields = ["related", *(f.name for f in Delivery._meta.fields)]

    @admin.display(description="related")
    def related(self, obj):
        """The configuration that made it, the customer, and the customer's other logs."""
        from customers.models import Customer
        from synclog.detail import logs_url

        links = []
        if obj.source_kind == "crm_action":
            sync_id = CrmSyncAction.objects.filter(pk=obj.source_id).values_list("sync_id", flat=True).first()
            if sync_id:
                links.append(("CRM sync", reverse("admin:outbound_crmsync_change", args=[sync_id])))
        elif obj.source_kind == "rule":
            links.append(("Rule", reverse("admin:rules_eventrule_change", args=[obj.source_id])))
        customer = Customer.objects.filter(pk=obj.customer_id).values_list("customer_id", flat=True).first()
        if customer is not None:
            links.append((f"Customer {customer}", reverse("admin:customers_customer_change", args=[obj.customer_id])))
            links.append(("All logs of this customer", logs_url(brand=obj.brand_id, customer=customer)))
        return format_html_join(" · ", '<a href="{}">{}</a>', ((url, label) for label, url in links)) or "—"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_retry_permission(self, request):
        return BrandScopedAdmin.has_change_permission(self, request)

    @admin.action(description="Retry now (failed or waiting deliveries)", permissions=["retry"])
    def retry_now(self, request, queryset):
        # queryset: only deliveries of brands the user administers (BrandScopedAdmin.get_action).
        with transaction.atomic():
            count = outbox.deliveries_retry_now(delivery_ids=list(queryset.values_list("pk", flat=True)))
        messages.success(request, f"{count} deliveries will be retried now.")

    @admin.action(description="Recover (re-queue failed ones as a background job)", permissions=["retry"])
    def recover(self, request, queryset):
        deliveries_job(request, queryset, replay=False)

    @admin.action(
        description="Replay (failed or delivered; same message id, marked as a replay)", permissions=["retry"]
    )
    def replay(self, request, queryset):
        deliveries_job(request, queryset, replay=True)


@admin.register(RemoteId)
class RemoteIdAdmin(BrandScopedAdmin):
    """The CRM ids read from create responses (Unique ID Path), read-only."""

    list_display = ["customer_ref", "customer_pk", "sync", "remote_id", "updated_at"]
    list_filter = ["sync"]
    search_fields = ["customer_ref", "remote_id"]
    readonly_fields = ["sync", "customer_pk", "customer_ref", "remote_id", "updated_at"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(OperationalWebhook)
class OperationalWebhookAdmin(BrandScopedAdmin):
    """A brand's operational webhook: destination.failing / disabled / recovered, signed."""

    list_display = ["brand", "url", "enabled"]
    list_filter = ["enabled", "brand"]
    fields = ["brand", "url", "enabled"]
    actions = ["new_signing_secret"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:  # a new webhook is signed from the start
            self.new_signing_secret(request, type(obj).objects.filter(pk=obj.pk))

    @admin.action(description="Generate a new signing secret (shown once)", permissions=["change"])
    def new_signing_secret(self, request, queryset):
        for hook in queryset:
            secret = hookhealth.operational_webhook_set(brand_id=hook.brand_id, url=hook.url)
            messages.warning(
                request,
                format_html("{}: new signing secret (shown once, copy it now): <code>{}</code>", hook.url, secret),
            )


def unhealthy_dashboard_section(brand) -> dict:
    """The dashboard's Destination health section: failing and disabled
    destinations, linking to the delivery list through its declared filters
    (state, source) only."""
    rows = []
    for row in hookhealth.unhealthy(brand_ids=[brand.pk]):
        waiting = "paused" if row.state == "disabled" else "pending"
        rows.append(
            {
                "row": row,
                "config_link": hookhealth.destination_admin_url(source_kind=row.source_kind, source_id=row.source_id),
                "deliveries_link": changelist_url(
                    "outbound_delivery",
                    brand__id__exact=brand.pk,
                    state__exact=waiting,
                    source=f"{row.source_kind}:{row.source_id}",
                ),
                "waiting": waiting,
            }
        )
    return {"unhealthy": rows}


admin_panels.dashboard_section_add(unhealthy_dashboard_section)
