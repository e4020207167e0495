"""Brand scoping for the admin: staff see and change only their brands.

A Membership gives a user a role in a brand: ``admin`` configures, ``auditor``
reads. Superusers see everything. Objects of another brand are left out of
every queryset, so their URLs (change, delete, history) answer 404 — the same
answer as for an object that does not exist, so ids of other brands leak nothing.
List filters offer only the brands the user can see.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import Http404

from .models import Brand, Membership, Role

_CACHE_ATTR = "_hookhub_brand_roles"


def brand_roles(user) -> dict[int, str]:
    """{brand_id: role} for the user, cached on the user object for one request."""
    if not user.is_authenticated:
        return {}
    cached = getattr(user, _CACHE_ATTR, None)
    if cached is None:
        cached = dict(Membership.objects.filter(user=user, brand__is_active=True).values_list("brand_id", "role"))
        setattr(user, _CACHE_ATTR, cached)
    return cached


def member_brand_ids(user) -> set[int]:
    return set(brand_roles(user))


def admin_brand_ids(user) -> set[int]:
    return {brand_id for brand_id, role in brand_roles(user).items() if role == Role.ADMIN}


def brands_for(user, *, write: bool = False) -> QuerySet[Brand]:
    if user.is_superuser:
        return Brand.objects.all()
    return Brand.objects.filter(pk__in=admin_brand_ids(user) if write else member_brand_ids(user))


def brand_id_of(obj: Model, lookup: str) -> int | None:
    """Follow an ORM path such as 'customer__brand' on an instance to a brand id."""
    if lookup == "pk":
        return obj.pk
    parts = lookup.split("__")
    target = obj
    for part in parts[:-1]:
        target = getattr(target, part, None)
        if target is None:
            return None
    return getattr(target, f"{parts[-1]}_id", None)


class BrandScopedAdmin(admin.ModelAdmin):
    """ModelAdmin whose rows, choices and permissions follow the user's memberships."""

    brand_lookup = "brand"

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{self.brand_lookup}__in": member_brand_ids(request.user)})

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        # Django redirects to the index with a message; another brand's object
        # (or a missing one) is simply not there: 404.
        raise Http404(f"No {opts.verbose_name} with this id.")

    def _require_visible(self, request, object_id) -> None:
        if not request.user.is_superuser and self.get_object(request, object_id) is None:
            raise Http404("No such object.")

    def delete_view(self, request, object_id, extra_context=None):
        self._require_visible(request, object_id)
        return super().delete_view(request, object_id, extra_context)

    def history_view(self, request, object_id, extra_context=None):
        self._require_visible(request, object_id)
        return super().history_view(request, object_id, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        """django-simple-history's "view this version" page, when the admin has it."""
        self._require_visible(request, object_id)
        return super().history_form_view(request, object_id, version_id, extra_context)

    def _is_member(self, request) -> bool:
        return request.user.is_active and request.user.is_staff and bool(member_brand_ids(request.user))

    def has_module_permission(self, request):
        return request.user.is_superuser or self._is_member(request)

    def has_view_permission(self, request, obj=None):
        if request.user.is_superuser:
            return True
        if obj is None:
            return self._is_member(request)
        return brand_id_of(obj, self.brand_lookup) in member_brand_ids(request.user)

    def has_change_permission(self, request, obj=None):
        if request.user.is_superuser:
            return True
        writable = admin_brand_ids(request.user)
        if obj is None:
            return request.user.is_staff and bool(writable)
        return brand_id_of(obj, self.brand_lookup) in writable

    def has_add_permission(self, request, obj=None):
        return self.has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self.has_change_permission(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Brand and not request.user.is_superuser:
            kwargs["queryset"] = brands_for(request.user, write=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_list_filter(self, request):
        """A plain brand filter would list every brand; offer only those the user sees."""
        return [
            (item, admin.RelatedOnlyFieldListFilter) if item in ("brand", self.brand_lookup) and item != "pk" else item
            for item in super().get_list_filter(request)
        ]


class BrandScopedInline:
    """Mixin for inlines of a brand-scoped parent: the parent decides."""

    def _parent_allows(self, request, obj, write: bool) -> bool:
        if request.user.is_superuser:
            return True
        if obj is None:
            return bool(admin_brand_ids(request.user) if write else member_brand_ids(request.user))
        brand_id = getattr(obj, "brand_id", None)
        return brand_id in (admin_brand_ids(request.user) if write else member_brand_ids(request.user))

    def has_view_permission(self, request, obj=None):
        return self._parent_allows(request, obj, write=False)

    def has_change_permission(self, request, obj=None):
        return self._parent_allows(request, obj, write=True)

    def has_add_permission(self, request, obj=None):
        return self._parent_allows(request, obj, write=True)

    def has_delete_permission(self, request, obj=None):
        return self._parent_allows(request, obj, write=True)
