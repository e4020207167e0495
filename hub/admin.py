from __future__ import annotations

from django.contrib import admin, messages
from django.template.response import TemplateResponse
from simple_history.admin import SimpleHistoryAdmin

from . import services
from .models import Brand, Credential, Membership
from .tenancy import BrandScopedAdmin, admin_brand_ids


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    has_change_permission = has_add_permission = has_delete_permission = has_view_permission


@admin.register(Brand)
class BrandAdmin(BrandScopedAdmin, SimpleHistoryAdmin):
    brand_lookup = "pk"
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
                "e.g. {{ customer.customer_id }}, {{ customer.first_name }}, {{ customer.email }}.",
            },
        ),
    ]

    def has_add_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    def get_readonly_fields(self, request, obj=None):
        # A brand admin may not rename the URL slug or switch the brand off (that would lock them out).
        return ["slug", "is_active"] if obj is not None and not request.user.is_superuser else []


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
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
        super().save_model(request, obj, form, change)
        if not obj.user.is_staff:
            obj.user.is_staff = True
            obj.user.save(update_fields=["is_staff"])


@admin.register(Credential)
class CredentialAdmin(BrandScopedAdmin, SimpleHistoryAdmin):
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
        return ["brand", "integration", "prefix_display", "created_at", "last_used_at", "revoked_at"]

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
        """Revoked keys get 403 at once; other active keys of the brand keep working (rotation)."""
        if not request.user.is_superuser:
            queryset = queryset.filter(brand_id__in=admin_brand_ids(request.user))
        count = 0
        for credential in queryset.filter(revoked_at__isnull=True):
            services.credential_revoke(credential=credential)
            count += 1
        messages.success(request, f"Revoked {count} key(s). Calls with them now get 403.")
