"""Brand scoping for the admin: staff see and change only their brands.

A Membership gives a user a role in a brand: ``admin`` configures, ``auditor``
reads. Superusers see everything. Objects of another brand are left out of
every queryset, so their URLs (change, delete, history) answer 404 — the same
answer as for an object that does not exist, so ids of other brands leak nothing.

What else follows the memberships (docs/roles.md):

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
from collections import defaultdict
from dataclasses import dataclass

from django.contrib import admin
from django.contrib.admin.utils import NotRelationField, flatten_fieldsets, get_fields_from_path, unquote
from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db.models import F, Model, OuterRef, QuerySet, Subquery
from django.http import Http404
from django.urls import reverse
from django.utils.text import capfirst
from simple_history.admin import SimpleHistoryAdmin
from simple_history.template_utils import HistoricalRecordContextHelper

from .models import Brand, Membership, Role
from .redaction import mask

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
    target: Model | None = obj
    for part in parts[:-1]:
        target = getattr(target, part, None)
        if target is None:
            return None
    return getattr(target, f"{parts[-1]}_id", None)


class ScopedAllValuesFieldListFilter(admin.AllValuesFieldListFilter):
    """Django's "all values" filter reads a related model's whole table for a
    path such as ``delivery__source_kind``; this one reads the user's rows only."""

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        self.lookup_choices = (
            model_admin.get_queryset(request).order_by(field_path).values_list(field_path, flat=True).distinct()
        )


class BrandScopedAdmin(admin.ModelAdmin):
    """ModelAdmin whose rows, choices and permissions follow the user's memberships."""

    brand_lookup = "brand"
    # Encrypted fields: shown to nobody who cannot change the object (see get_fieldsets).
    secret_fields: tuple[str, ...] = ()

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{self.brand_lookup}__in": member_brand_ids(request.user)})

    def writable_queryset(self, request, queryset: QuerySet | None = None) -> QuerySet:
        """The rows (of ``queryset``, default all visible rows) the user may change."""
        queryset = self.get_queryset(request) if queryset is None else queryset
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{self.brand_lookup}__in": admin_brand_ids(request.user)})

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
        if getattr(request, "_hookhub_read_only", False):
            return False
        writable = admin_brand_ids(request.user)
        if obj is None:
            return request.user.is_staff and bool(writable)
        return brand_id_of(obj, self.brand_lookup) in writable

    def has_add_permission(self, request, obj=None):
        return self.has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self.has_change_permission(request, obj)

    # ------------------------------------------------------------ choices

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        """Choices (and so what autocomplete and raw-id inputs accept) are the
        objects of brands the user administers."""
        if not request.user.is_superuser and "queryset" not in kwargs:
            related_admin = self.admin_site._registry.get(db_field.related_model)
            if db_field.related_model is Brand:
                kwargs["queryset"] = brands_for(request.user, write=True)
            elif isinstance(related_admin, BrandScopedAdmin):
                kwargs["queryset"] = related_admin.writable_queryset(request)
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


# ---------------------------------------------------------------- history


def has_history(model) -> bool:
    return hasattr(model._meta, "simple_history_manager_attribute")


def history_model_of(model):
    return getattr(model, model._meta.simple_history_manager_attribute).model


def parent_fk(child: type[Model], parent: type[Model]):
    """The foreign key of an inline's model to the model of the page it is on."""
    return next(f for f in child._meta.concrete_fields if f.is_relation and f.related_model is parent)


def history_delta(record, previous) -> list[dict]:
    """What changed from ``previous`` to ``record`` (same object), as
    [{"field", "old", "new"}]: the tracked fields, then the secrets' fingerprints."""
    if previous is None:
        return []
    delta = record.diff_against(previous, foreign_keys_are_objs=True)
    changes = _MaskingContextHelper(record.instance_type, record).context_for_delta_changes(delta)
    # simple-history diffs editable fields only; a key's revoked_at is set by an action, never typed.
    for field in record.tracked_fields:
        if field.editable or field.is_relation:
            continue
        old, new = getattr(previous, field.attname), getattr(record, field.attname)
        if old != new:
            changes.append({"field": capfirst(field.verbose_name), "old": _shown(old), "new": _shown(new)})
    if getattr(record, "history_secret_fields", ()) and record.secrets != previous.secrets:
        old, new = _secret_states(previous.secrets), _secret_states(record.secrets)
        for name in dict.fromkeys([*new, *old]):
            if old.get(name) != new.get(name):
                changes.append(
                    {"field": f"{capfirst(name)} (secret)", "old": old.get(name, "—"), "new": new.get(name, "—")}
                )
    return changes


class _MaskingContextHelper(HistoricalRecordContextHelper):
    """simple-history's formatting of a change, with keys typed into a URL or a
    header (before that was refused) masked in the raw value, before it is escaped."""

    def prepare_delta_change_value(self, change, value):
        return _masked(super().prepare_delta_change_value(change, value))


def _masked(value):
    """A history value with secrets masked (hub.redaction.mask)."""
    return mask(value) if isinstance(value, str) else value


def _shown(value) -> str:
    return "None" if value is None else _masked(str(value))


def _secret_states(summary: str) -> dict[str, str]:
    """'password: set (1a2b3c4d); API key: not set' -> {'password': 'set (1a2b3c4d)', 'API key': 'not set'}"""
    return dict(part.split(": ", 1) for part in (summary or "").split("; ") if ": " in part)


def with_deltas(records: list) -> list:
    """Sets ``history_delta_changes`` on records (any order, any objects). The
    versions before the oldest listed one of each object are fetched in one
    query per model (what ``prev_record`` would fetch row by row)."""
    ordered = sorted(records, key=lambda r: (r.history_date, r.history_id))
    last_seen: dict = _previous_versions(ordered)
    for record in ordered:
        key = _version_key(record)
        record.history_delta_changes = history_delta(record, last_seen.get(key))
        last_seen[key] = record
    return records


def _version_key(record) -> tuple:
    return type(record), getattr(record, record.instance_type._meta.pk.attname)


def _previous_versions(ordered: list) -> dict:
    """{(history model, object id): the version before the object's oldest in ``ordered``}."""
    oldest: dict = {}
    for record in ordered:
        oldest.setdefault(_version_key(record), record)
    wanted = defaultdict(list)
    for record in oldest.values():
        if record.history_type != "+":
            wanted[type(record)].append(record.history_id)
    found = {}
    for history_model, ids in wanted.items():
        pk_name = history_model.instance_type._meta.pk.attname
        before = (
            history_model.objects.filter(**{pk_name: OuterRef(pk_name)}, history_date__lt=OuterRef("history_date"))
            .order_by("-history_date")
            .values("history_id")[:1]
        )
        previous_ids = history_model.objects.filter(history_id__in=ids).values(previous=Subquery(before))
        for version in history_model.objects.filter(history_id__in=previous_ids):
            found[_version_key(version)] = version
    return found


@dataclass
class HistorySource:
    """One tracked model on the Configuration changes page."""

    key: str  # app_label.model_name
    label: str
    model: type[Model]
    brand_path: str  # ORM path from the historical model to the brand id
    link_admin: admin.ModelAdmin  # whose history page lists these records
    link_attname: str  # attribute of a record holding the link_admin object's id

    def brand_filter(self, brand_ids) -> dict:
        return {f"{self.brand_path}__in": brand_ids}


def history_sources(site) -> list[HistorySource]:
    """Tracked models of brand-scoped admins, and tracked models of their inlines
    (a CRM sync's webhooks, a brand's memberships) — found, not listed, so a new
    tracked configuration shows up by itself."""
    found: dict[type[Model], HistorySource] = {}
    for model, model_admin in site._registry.items():
        if not isinstance(model_admin, BrandScopedAdmin):
            continue
        lookup = model_admin.brand_lookup
        if has_history(model) and model not in found:
            found[model] = HistorySource(
                key=model._meta.label_lower,
                label=str(model._meta.verbose_name_plural),
                model=model,
                brand_path="id" if lookup == "pk" else lookup,
                link_admin=model_admin,
                link_attname=model._meta.pk.attname,
            )
        for inline in model_admin.inlines:
            child = inline.model
            if child in found or not has_history(child):
                continue
            fk = parent_fk(child, model)
            found[child] = HistorySource(
                key=child._meta.label_lower,
                label=str(child._meta.verbose_name_plural),
                model=child,
                brand_path=fk.name if lookup == "pk" else f"{fk.name}__{lookup}",
                link_admin=model_admin,
                link_attname=fk.attname,
            )
    return sorted(found.values(), key=lambda source: source.label.lower())


def recent_changes(*, user, sources: list[HistorySource], brand_ids: set[int] | None = None, limit: int = 100):
    """The newest recorded changes of the given sources in the user's brands."""
    if not user.is_superuser:
        visible = member_brand_ids(user)
        brand_ids = visible if brand_ids is None else brand_ids & visible
    records = []
    for source in sources:
        queryset = history_model_of(source.model).objects.all()
        if brand_ids is not None:
            queryset = queryset.filter(**source.brand_filter(brand_ids))
        queryset = queryset.annotate(hub_brand_id=F(source.brand_path)).select_related("history_user")
        for record in queryset.order_by("-history_date", "-history_id")[:limit]:
            record.hub_source = source
            records.append(record)
    records.sort(key=lambda r: (r.history_date, r.history_id), reverse=True)
    records = with_deltas(records[:limit])
    _label(records)
    brand_names = dict(Brand.objects.filter(pk__in={r.hub_brand_id for r in records}).values_list("pk", "name"))
    links = _history_links(records)
    for record in records:
        record.hub_brand_name = brand_names.get(record.hub_brand_id, "(deleted brand)")
        source = record.hub_source
        record.hub_history_url = links.get((source.link_admin.model, getattr(record, source.link_attname)), "")
    return records


def _label(records) -> None:
    """record.hub_label: the object as it was, named by its own __str__, with the
    objects its name mentions (a webhook's CRM sync) fetched once per model."""
    by_model = defaultdict(list)
    for record in records:
        by_model[record.instance_type].append((record, record.history_object))
    for model, pairs in by_model.items():
        for field in model._meta.concrete_fields:
            if not field.many_to_one:
                continue
            ids = {getattr(obj, field.attname) for _, obj in pairs} - {None}
            related = field.related_model._default_manager.in_bulk(ids)
            for _, obj in pairs:
                if getattr(obj, field.attname) in related:
                    setattr(obj, field.name, related[getattr(obj, field.attname)])
        for record, obj in pairs:
            try:
                record.hub_label = str(obj)
            except ObjectDoesNotExist:  # a deleted parent the name needs: fall back to the id
                record.hub_label = f"{model._meta.verbose_name} #{obj.pk}"


def _history_links(records) -> dict:
    """{(model, id): history page URL} for the objects that still exist."""
    wanted = defaultdict(set)
    for record in records:
        source = record.hub_source
        wanted[source.link_admin.model].add(getattr(record, source.link_attname))
    links = {}
    for model, ids in wanted.items():
        # Every registered ModelAdmin has a history URL (link_admin comes from the site's registry).
        name = f"admin:{model._meta.app_label}_{model._meta.model_name}_history"
        for pk in model._default_manager.filter(pk__in=ids).values_list("pk", flat=True):
            links[(model, pk)] = reverse(name, args=[pk])
    return links


class BrandScopedHistoryAdmin(BrandScopedAdmin, SimpleHistoryAdmin):
    """A brand-scoped admin with django-simple-history's history pages: who
    changed what and when, browsable by the brand's auditors, read-only for all.
    Secret fields are not in the history; a change of one shows as a changed
    fingerprint (hub.models.SecretsHistory). The page also lists the history of
    the inlines the user may see (a CRM sync's webhooks)."""

    object_history_template = "admin/hookhub/object_history.html"
    object_history_list_template = "admin/hookhub/object_history_list.html"

    def set_history_delta_changes(self, request, historical_records, foreign_keys_are_objs=True):
        with_deltas(list(historical_records))

    def history_view(self, request, object_id, extra_context=None):
        # Another brand's object: None here, and 404 from BrandScopedAdmin.history_view.
        obj = self.get_object(request, unquote(object_id))
        related = [] if obj is None else self._inline_history(request, obj)
        return super().history_view(request, object_id, {**(extra_context or {}), "related_history": related})

    def _inline_history(self, request, obj) -> list[dict]:
        related = []
        seen = set()
        for inline in self.get_inline_instances(request, obj):
            child = inline.model
            if child in seen or not has_history(child) or not inline.has_view_permission(request, obj):
                continue
            seen.add(child)
            records = list(
                history_model_of(child)
                .objects.filter(**{parent_fk(child, self.model).attname: obj.pk})
                .select_related("history_user")
                .order_by("-history_date", "-history_id")[: self.history_list_per_page]
            )
            related.append({"label": child._meta.verbose_name_plural, "records": with_deltas(records)})
        return related


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
