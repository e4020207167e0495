from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.text import capfirst
from simple_history.admin import SimpleHistoryAdmin

from . import scoping, services
from .history import BrandScopedHistoryAdmin, history_sources, recent_changes
from .models import PHONE_ADDRESS_TYPES, Brand, Credential, Membership, default_phone_address_types

CHANGES_SHOWN = 200


class MembershipFormsetMixin:
    """Memberships added or changed in an inline go through services.membership_save,
    which makes the user staff (the operator only picks user, brand and role) and,
    when a row is moved to another user or brand, revokes the old access."""

    def save_formset(self, request, form, formset, change):
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        memberships = formset.save(commit=False)
        for membership in formset.deleted_objects:
            membership.delete()
        for membership in memberships:
            services.membership_save(membership=membership)
        return None


class SuperuserOnlyInline(admin.TabularInline):
    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    has_change_permission = has_add_permission = has_delete_permission = has_view_permission


class MembershipInline(SuperuserOnlyInline):
    """On the brand page: who works on this brand, and in which role."""

    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    verbose_name = "member"
    verbose_name_plural = "members (admins configure, auditors read)"


class UserMembershipInline(SuperuserOnlyInline):
    """On the user page: the brands this user works on, and the role in each."""

    model = Membership
    fk_name = "user"
    extra = 0
    autocomplete_fields = ["brand"]
    verbose_name = "brand role"
    verbose_name_plural = "brand roles (admins configure, auditors read)"


class PhoneAddressTypesField(forms.TypedMultipleChoiceField):
    """Checkboxes; none ticked (or the field left out of a post) is the default, telephone only."""

    def __init__(self, **kwargs):
        kwargs.update(choices=[(kind, kind) for kind in PHONE_ADDRESS_TYPES], required=False)
        super().__init__(widget=forms.CheckboxSelectMultiple, **kwargs)

    def clean(self, value):
        return super().clean(value) or default_phone_address_types()


class SuffixDigitsField(forms.IntegerField):
    """Empty is 0: suffix matching off."""

    def clean(self, value):
        cleaned = super().clean(value)
        return 0 if cleaned is None else cleaned


class OwnLinesField(forms.CharField):
    """The brand's lines one per line (or comma-separated) in the form, a JSON list in the model."""

    widget = forms.Textarea(attrs={"rows": 4, "cols": 40})

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list) else value

    def clean(self, value):
        text = super().clean(value) or ""
        return [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]


# The matching policy fields' admin form fields (hub.models.Brand, "Matching policy").
POLICY_FORM_FIELDS = {
    "phone_address_types": PhoneAddressTypesField,
    "suffix_match_digits": SuffixDigitsField,
    "own_lines": OwnLinesField,
}


@admin.register(Brand)
class BrandAdmin(MembershipFormsetMixin, BrandScopedHistoryAdmin):
    list_display = ["name", "slug", "default_region", "time_zone", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]
    fieldsets = [
        (None, {"fields": ["name", "slug", "is_active"]}),
        ("Phone numbers and time", {"fields": ["default_region", "time_zone"]}),
        (
            "M8Com contact card",
            {
                "fields": ["more_info_url_template", "create_activity_urls", "create_unknown_callers"],
                "description": "Links M8Com shows beside a caller. Templates use the customer's data, "
                "e.g. {{ customer.customer_id }}, {{ customer.first_name }}, {{ customer.email }}; each value "
                "is percent-encoded for its part of the URL. Links are checked when saved (syntax, a sample "
                "render within the lookup's budget); a link that fails at lookup time is left out.",
            },
        ),
        (
            "Lookup chain",
            {
                "fields": ["lookup_budget_ms", "lookup_parallel", "lookup_priority_window_ms"],
                "description": "When the hub does not know a caller, the brand's lookup sources are asked "
                "(Lookup sources in the menu; docs/lookup-sources.md).",
            },
        ),
        (
            "Matching policy",
            {
                "fields": ["phone_address_types", "suffix_match_digits", "own_lines"],
                "description": "Which customer a phone number belongs to, for the Omnidesk and M8Com lookups and "
                "for call logs and service hooks. Numbers of 5 digits or fewer are internal extensions and are "
                "never looked up. When several customers hold a number, M8Com shows the most recently updated "
                "one (Omnidesk gets them all); the request log says how many matched. A change applies to the "
                "next lookup.",
            },
        ),
    ]

    def has_add_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field_class = POLICY_FORM_FIELDS.get(db_field.name)
        if field_class is None:
            return super().formfield_for_dbfield(db_field, request, **kwargs)
        # Not required: a post without them (an older form, a script) sets the defaults.
        return field_class(label=capfirst(db_field.verbose_name), help_text=db_field.help_text, required=False)

    def save_model(self, request, obj, form, change):
        # Through the service: drops cached lookup answers and, after a time-zone
        # change, rebuilds the stored Omnidesk answers (lastUpdate is local time).
        services.brand_update(brand=obj)

    def get_prepopulated_fields(self, request, obj=None):
        return (
            {} if obj is not None and not request.user.is_superuser else super().get_prepopulated_fields(request, obj)
        )

    def get_readonly_fields(self, request, obj=None):
        # A brand admin may not rename the URL slug or switch the brand off (that would lock them out).
        readonly = super().get_readonly_fields(request, obj)
        if obj is not None and not request.user.is_superuser:
            readonly = [*readonly, *(name for name in ("slug", "is_active") if name not in readonly)]
        return readonly

    def get_urls(self):
        own = [
            path(
                "changes/",
                self.admin_site.admin_view(self.changes_view),
                name="hub_configuration_changes",
            )
        ]
        return own + super().get_urls()

    def changes_view(self, request):
        """Configuration changes: every recorded change (CRM syncs and their
        webhooks, rules, keys, brands, memberships) of the user's brands, newest first."""
        if not self.has_module_permission(request):
            raise PermissionDenied
        sources = history_sources(self.admin_site)
        brands = scoping.brands(user=request.user, action=scoping.VIEW).order_by("name")
        brand_id = request.GET.get("brand", "")
        kind = request.GET.get("kind", "")
        chosen = [s for s in sources if not kind or s.key == kind]
        entries = recent_changes(
            user=request.user,
            sources=chosen,
            brand_id=int(brand_id) if brand_id.isdigit() else None,
            limit=CHANGES_SHOWN,
        )
        context = {
            **self.admin_site.each_context(request),
            "title": "Configuration changes",
            "opts": self.model._meta,
            "entries": entries,
            "sources": sources,
            "brands": brands,
            "chosen_brand": brand_id,
            "chosen_kind": kind,
            "shown": CHANGES_SHOWN,
        }
        return TemplateResponse(request, "admin/hookhub/configuration_changes.html", context)


@admin.register(Membership)
class MembershipAdmin(SimpleHistoryAdmin):
    """Operators (superusers) assign people: user, brand, role. Saving makes the user staff."""

    list_display = ["user", "brand", "role"]
    list_filter = ["role", "brand"]
    search_fields = ["user__username", "user__email", "brand__name"]
    autocomplete_fields = ["user", "brand"]

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    has_change_permission = has_add_permission = has_delete_permission = has_view_permission

    def save_model(self, request, obj, form, change):
        membership = services.membership_save(membership=obj)
        obj.pk = membership.pk


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class HookhubUserAdmin(MembershipFormsetMixin, UserAdmin):
    """Django's user admin with the user's brand roles inline."""

    inlines = [*UserAdmin.inlines, UserMembershipInline]
    # django-stubs cannot make list_display a ClassVar (it depends on the model type variable).
    list_display = [*UserAdmin.list_display, "brand_roles"]  # type: ignore[misc]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("memberships__brand")

    @admin.display(description="brand roles")
    def brand_roles(self, obj):
        return ", ".join(f"{m.brand.name} ({m.role})" for m in obj.memberships.all()) or "—"


@admin.register(Credential)
class CredentialAdmin(BrandScopedHistoryAdmin):
    """Inbound keys. "Add" issues a new key and shows the secret once."""

    list_display = ["prefix_display", "brand", "integration", "name", "created_at", "last_used_at", "status"]
    list_filter = ["integration", "brand", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "name", "brand__name"]
    readonly_fields = ["prefix_display", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke_selected"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["brand", "integration", "name", "allowed_networks"]
        return [
            "brand",
            "integration",
            "name",
            "prefix_display",
            "allowed_networks",
            "created_at",
            "last_used_at",
            "revoked_at",
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        readonly = ["brand", "integration", "prefix_display", "created_at", "last_used_at", "revoked_at"]
        return [*readonly, *(n for n in super().get_readonly_fields(request, obj) if n not in readonly)]

    @admin.display(description="key")
    def prefix_display(self, obj):
        return f"{obj.prefix}…"

    @admin.display(description="status", boolean=False)
    def status(self, obj):
        return "revoked" if obj.revoked_at else "active"

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name", "allowed_networks"])
            return
        credential, secret = services.credential_issue(
            brand=obj.brand, integration=obj.integration, name=obj.name, allowed_networks=obj.allowed_networks
        )
        obj.pk = credential.pk
        obj.prefix = credential.prefix
        request._hookhub_new_secret = secret

    def response_add(self, request, obj, post_url_continue=None):
        secret = getattr(request, "_hookhub_new_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "credential": obj,
            "secret": secret,
            "title": "New key issued",
        }
        response = TemplateResponse(request, "admin/hub/credential/issued.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_selected(self, request, queryset):
        """Revoked keys get 403 at once; other active keys of the brand keep working (rotation).
        ``queryset`` holds only keys of brands the user administers (BrandScopedAdmin.get_action)."""
        count = 0
        for credential in queryset.filter(revoked_at__isnull=True):
            services.credential_revoke(credential=credential)
            count += 1
        messages.success(request, f"Revoked {count} key(s). Calls with them now get 403.")
