"""The configuration history engine: what changed in each recorded version of
a brand's configuration (django-simple-history), the *Configuration changes*
page's reads, and the history pages of brand-scoped admins.

Which versions a user may read is decided by the one tenancy scope
(``hub.scoping``): a version belongs to the brand its object belongs to.
Values are masked before they are shown (``_masked``): secrets never enter the
history, and keys typed into a URL or header before that was refused are hidden.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import F, Model, OuterRef, Subquery
from django.urls import reverse
from django.utils.text import capfirst
from simple_history.admin import SimpleHistoryAdmin
from simple_history.template_utils import HistoricalRecordContextHelper

from . import scoping
from .models import Brand
from .redaction import mask
from .tenancy import BrandScopedAdmin


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
    link_admin: admin.ModelAdmin  # whose history page lists these records
    link_attname: str  # attribute of a record holding the link_admin object's id

    @property
    def brand_path(self) -> str:
        """ORM path from a version (the historical model) to its brand id (hub.scoping)."""
        path = scoping.brand_path(history_model_of(self.model))
        assert path is not None, self.model  # history_sources lists brand-owned models only
        return path


def history_sources(site) -> list[HistorySource]:
    """Tracked models of brand-scoped admins, and tracked models of their inlines
    (a CRM sync's webhooks, a brand's memberships) — found, not listed, so a new
    tracked configuration shows up by itself."""
    found: dict[type[Model], HistorySource] = {}
    for model, model_admin in site._registry.items():
        if not isinstance(model_admin, BrandScopedAdmin):
            continue
        if has_history(model) and model not in found:
            found[model] = HistorySource(
                key=model._meta.label_lower,
                label=str(model._meta.verbose_name_plural),
                model=model,
                link_admin=model_admin,
                link_attname=model._meta.pk.attname,
            )
        for inline in model_admin.inlines:
            child = inline.model
            if child in found or not has_history(child) or scoping.brand_path(child) is None:
                continue
            found[child] = HistorySource(
                key=child._meta.label_lower,
                label=str(child._meta.verbose_name_plural),
                model=child,
                link_admin=model_admin,
                link_attname=parent_fk(child, model).attname,
            )
    return sorted(found.values(), key=lambda source: source.label.lower())


def recent_changes(*, user, sources: list[HistorySource], brand_id: int | None = None, limit: int = 100):
    """The newest recorded changes of the given sources in the user's brands
    (``brand_id``: of that brand only)."""
    records = []
    for source in sources:
        queryset = scoping.restrict(history_model_of(source.model).objects.all(), user=user, action=scoping.VIEW)
        if brand_id is not None:
            queryset = queryset.filter(**{source.brand_path: brand_id})
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
