"""The admin base every brand-owned model's admin derives from: what a page
shows, offers and accepts follows the one tenancy scope (``hub.scoping``).

A Membership gives a user a role in a brand: ``admin`` configures, ``auditor``
reads. Superusers see everything. Objects of another brand are left out of
every queryset, so their URLs (change, delete, history) answer 404 — the same
answer as for an object that does not exist, so ids of other brands leak nothing.

What else follows the memberships (docs/roles.md):

- lists accept only their declared filters (list_filter, date hierarchy,
  search, ordering, pagination): any other lookup, such as a relation walked to
  another table (``brand__memberships__user__password__startswith``), answers
  400 before a query runs, so no filter becomes an oracle (superusers aside);
- list filters offer only values found in the rows the user can see;
- foreign-key choices, autocomplete answers and raw-id inputs (validated
  against the choices) hold only objects of brands the user administers;
- actions that change something (and list_editable saves) only ever touch rows
  of brands the user administers, whatever ids are posted; read-only actions
  (exports) see the rows the user can see;
- history pages are read-only for everyone (no "revert"); auditors browse them;
- secret fields are never rendered to someone who cannot change them.
"""

from __future__ import annotations

import functools
import re

from django.contrib import admin
from django.contrib.admin.filters import FieldListFilter, ListFilter, SimpleListFilter
from django.contrib.admin.utils import NotRelationField, flatten_fieldsets, get_fields_from_path, unquote
from django.core.exceptions import FieldDoesNotExist, PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404

from . import scoping


class ScopedAllValuesFieldListFilter(admin.AllValuesFieldListFilter):
    """Django's "all values" filter reads a related model's whole table for a
    path such as ``delivery__source_kind``; this one reads the user's rows only."""

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        self.lookup_choices = (
            model_admin.get_queryset(request).order_by(field_path).values_list(field_path, flat=True).distinct()
        )


class BrandScopedAdmin(admin.ModelAdmin):
    """ModelAdmin whose rows, choices, filters and permissions follow the user's
    memberships, all asked of hub.scoping (the model's brand path is found there)."""

    # Encrypted fields: shown to nobody who cannot change the object (see get_fieldsets).
    secret_fields: tuple[str, ...] = ()

    def get_queryset(self, request):
        return scoping.restrict(super().get_queryset(request), user=request.user, action=scoping.VIEW)

    def writable_queryset(self, request, queryset: QuerySet | None = None) -> QuerySet:
        """The rows (of ``queryset``, default all visible rows) the user may change."""
        queryset = self.get_queryset(request) if queryset is None else queryset
        return scoping.restrict(queryset, user=request.user, action=scoping.CHANGE)

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        # Django redirects to the index with a message; another brand's object
        # (or a missing one) is simply not there: 404.
        raise Http404(f"No {opts.verbose_name} with this id.")

    def _require_visible(self, request, object_id) -> None:
        if not request.user.is_superuser and self.get_object(request, object_id) is None:
            raise Http404("No such object.")

    def get_urls(self):
        """Every change URL (whatever view a subclass puts behind it) answers 404
        for an object the user cannot see and 403 to a POST from someone who may
        not change the object, before the view runs."""
        urls = super().get_urls()
        name = f"{self.opts.app_label}_{self.opts.model_name}_change"
        for pattern in urls:
            if getattr(pattern, "name", None) == name:
                pattern.callback = self.admin_site.admin_view(self._guarded_change_view)
                pattern.callback.model_admin = self
        return urls

    def _guarded_change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        if obj is None and not request.user.is_superuser:
            raise Http404(f"No {self.opts.verbose_name} with this id.")
        if request.method == "POST" and obj is not None and not self.has_change_permission(request, obj):
            raise PermissionDenied
        return self.change_view(request, object_id, form_url, extra_context)

    def delete_view(self, request, object_id, extra_context=None):
        self._require_visible(request, object_id)
        return super().delete_view(request, object_id, extra_context)

    def history_view(self, request, object_id, extra_context=None):
        self._require_visible(request, object_id)
        return super().history_view(request, object_id, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        """django-simple-history's "view this version" page, when the admin has it.

        Read-only: simple-history would save the old version on POST (for anyone
        who may view it, auditors included), and a revert would bypass the
        services and the inlines."""
        self._require_visible(request, object_id)
        if request.method != "GET":
            raise PermissionDenied
        request._hookhub_read_only = True
        return super().history_form_view(request, object_id, version_id, extra_context)

    def revert_disabled(self, request, obj=None):
        return True

    def _is_member(self, request) -> bool:
        user = request.user
        return user.is_active and user.is_staff and scoping.has_brands(user=user, action=scoping.VIEW)

    def has_module_permission(self, request):
        return request.user.is_superuser or self._is_member(request)

    def has_view_permission(self, request, obj=None):
        if request.user.is_superuser:
            return True
        if obj is None:
            return self._is_member(request)
        return scoping.permits(user=request.user, obj=obj, action=scoping.VIEW)

    def has_change_permission(self, request, obj=None):
        if request.user.is_superuser:
            return True
        if getattr(request, "_hookhub_read_only", False):
            return False
        if obj is None:
            return request.user.is_staff and scoping.has_brands(user=request.user, action=scoping.CHANGE)
        return scoping.permits(user=request.user, obj=obj, action=scoping.CHANGE)

    def has_add_permission(self, request, obj=None):
        return self.has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self.has_change_permission(request, obj)

    # ------------------------------------------------------------ choices

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        """Choices (and so what autocomplete and raw-id inputs accept) are the
        objects of brands the user administers."""
        if not request.user.is_superuser and "queryset" not in kwargs:
            related = db_field.related_model
            if scoping.brand_path(related) is not None:
                queryset = self.get_field_queryset(None, db_field, request)
                queryset = related._default_manager.all() if queryset is None else queryset
                kwargs["queryset"] = scoping.restrict(queryset, user=request.user, action=scoping.CHANGE)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_search_results(self, request, queryset, search_term):
        """Autocomplete fills a form field, so it offers what the field accepts:
        objects of brands the user administers (an auditor is offered nothing)."""
        match = getattr(request, "resolver_match", None)
        if match is not None and match.url_name == "autocomplete":
            queryset = self.writable_queryset(request, queryset)
        return super().get_search_results(request, queryset, search_term)

    def get_list_filter(self, request):
        """Filters offer only values found in the user's rows: a plain relation
        filter would list every brand (or every brand's syncs)."""
        scoped = []
        for item in super().get_list_filter(request):
            if isinstance(item, str):
                try:
                    field = get_fields_from_path(self.model, item)[-1]
                except (FieldDoesNotExist, NotRelationField):
                    field = None
                if field is not None and field.is_relation:
                    item = (item, admin.RelatedOnlyFieldListFilter)
                elif field is not None and "__" in item and not field.choices:
                    item = (item, ScopedAllValuesFieldListFilter)
            scoped.append(item)
        return scoped

    # ------------------------------------------------------------ declared filters only

    def lookup_allowed(self, lookup, value, request=None):
        """A list accepts the parameters of its declared filters and date hierarchy
        (search, ordering and pagination are Django's own, never lookups); anything
        else is Django's DisallowedModelAdminLookup, answered 400 before a query
        runs, whatever the value. Superusers keep Django's rule (local fields and
        declared relations)."""
        if request is not None and request.user.is_superuser:
            return super().lookup_allowed(lookup, value, request)
        return request is not None and lookup in self.declared_lookups(request)

    def declared_lookups(self, request) -> frozenset[str]:
        """The query-string names this list's filters read, for this request."""
        cache = request.__dict__.setdefault("_hookhub_declared_lookups", {})
        if self not in cache:
            names: set[str] = set()
            for item in self.get_list_filter(request):
                names.update(self._filter_parameters(request, item))
            if self.date_hierarchy:
                names.update(f"{self.date_hierarchy}__{part}" for part in ("year", "month", "day"))
            cache[self] = frozenset(names)
        return cache[self]

    def _filter_parameters(self, request, item) -> list[str]:
        if isinstance(item, type) and issubclass(item, SimpleListFilter) and item.parameter_name:
            return [item.parameter_name]
        spec: ListFilter
        if isinstance(item, type) and issubclass(item, ListFilter):
            spec = item(request, {}, self.model, self)
        else:
            field_path, filter_class = item if isinstance(item, (list, tuple)) else (item, FieldListFilter.create)
            field = get_fields_from_path(self.model, field_path)[-1]
            spec = filter_class(field, request, {}, self.model, self, field_path=field_path)
        return [name for name in spec.expected_parameters() or () if name]

    # ------------------------------------------------------------ writes

    def get_action(self, action):
        """Actions that change something get only the selected rows of brands the
        user administers; read-only ones (allowed for "view") get what the user sees."""
        found = super().get_action(action)
        if found is None:
            return None
        func, name, description = found
        permissions = set(getattr(func, "allowed_permissions", ()) or ())
        if permissions and permissions <= {"view"}:
            return found

        @functools.wraps(func)
        def scoped(modeladmin, request, queryset):
            return func(modeladmin, request, modeladmin.writable_queryset(request, queryset))

        return scoped, name, description

    def changelist_view(self, request, extra_context=None):
        """list_editable saves check every posted row: one of a brand the user
        does not administer (or does not see) refuses the whole save with 403."""
        if request.method == "POST" and "_save" in request.POST and self.list_editable:
            pk_name = self.model._meta.pk.name
            pattern = re.compile(rf"^form-\d+-{re.escape(pk_name)}$")
            posted = {value for key, value in request.POST.items() if pattern.match(key)}
            if posted:
                try:
                    wanted = {self.model._meta.pk.to_python(value) for value in posted}
                except ValidationError as exc:
                    raise PermissionDenied from exc
                allowed = set(self.writable_queryset(request).filter(pk__in=wanted).values_list("pk", flat=True))
                if wanted - allowed:
                    raise PermissionDenied
        return super().changelist_view(request, extra_context)

    # ------------------------------------------------------------ secrets

    def get_fieldsets(self, request, obj=None):
        """For someone who cannot change the object, the secret fields are
        replaced by one read-only line saying which are set (never the values)."""
        fieldsets = super().get_fieldsets(request, obj)
        if not self.secret_fields:
            return fieldsets
        if not getattr(request, "_hookhub_read_only", False):
            if obj is not None and self.has_change_permission(request, obj):
                return fieldsets
            if obj is None and self.has_add_permission(request):
                return fieldsets
        masked = []
        placed = False
        for title, options in fieldsets:
            fields = []
            for item in options.get("fields", ()):
                names = item if isinstance(item, (list, tuple)) else (item,)
                kept = tuple(name for name in names if name not in self.secret_fields)
                if len(kept) != len(names) and not placed:
                    kept = (*kept, "stored_secrets")
                    placed = True
                if kept:
                    fields.append(kept if isinstance(item, (list, tuple)) else kept[0])
            masked.append((title, {**options, "fields": fields}))
        return masked

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if self.secret_fields and "stored_secrets" not in readonly:
            readonly.append("stored_secrets")
        if getattr(request, "_hookhub_read_only", False) and not getattr(request, "_hookhub_listing", False):
            # The history version page: everything read-only, secrets masked.
            # (get_fieldsets may build a form, which asks for the read-only fields again.)
            request._hookhub_listing = True
            try:
                names = flatten_fieldsets(self.get_fieldsets(request, obj))
            finally:
                request._hookhub_listing = False
            readonly += [name for name in names if name not in readonly]
        return readonly

    @admin.display(description="secrets")
    def stored_secrets(self, obj):
        parts = []
        for name in self.secret_fields:
            label = obj._meta.get_field(name).verbose_name
            parts.append(f"{label}: {'set (hidden)' if getattr(obj, name, '') else 'not set'}")
        return "; ".join(parts)


class BrandScopedInline:
    """Mixin for inlines of a brand-scoped parent: the parent decides."""

    def _parent_allows(self, request, obj, write: bool) -> bool:
        action = scoping.CHANGE if write else scoping.VIEW
        if obj is None:
            return scoping.has_brands(user=request.user, action=action)
        return scoping.permits(user=request.user, obj=obj, action=action)

    def has_view_permission(self, request, obj=None):
        return self._parent_allows(request, obj, write=False)

    def has_change_permission(self, request, obj=None):
        return self._parent_allows(request, obj, write=True)

    def has_add_permission(self, request, obj=None):
        return self._parent_allows(request, obj, write=True)

    def has_delete_permission(self, request, obj=None):
        return self._parent_allows(request, obj, write=True)
