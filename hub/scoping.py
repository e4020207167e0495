"""One tenancy scope: which brands a user may view or change, and every
brand-owned queryset restricted to them.

The shape of NetBox's ``RestrictedQuerySet.restrict(user, action)``: a caller
never derives brand ids itself, it asks

- ``restrict(queryset, user=..., action=VIEW | CHANGE)`` for rows,
- ``brands(user=..., action=...)`` for the brands themselves,
- ``permits(user=..., obj=..., action=...)`` for one object,
- ``has_brands(user=..., action=...)`` for "may this user view / change anything at all".

A ``Membership`` gives a user a role in a brand: ``admin`` may view and change,
``auditor`` may view. Memberships of a switched-off brand count for nothing.
Superusers may do everything, in every brand.

Each model's path to its brand is found once, from its foreign keys (the
shortest path, e.g. ``customer__brand`` for a timeline activity); a model with
two equally short paths must declare ``brand_scope_path`` on its class. A model
with no path to a brand is not brand-owned, and ``restrict`` refuses it rather
than answer unscoped rows.
"""

from __future__ import annotations

import functools
from typing import Literal, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model, QuerySet

from .models import Brand, Membership, Role

VIEW: Literal["view"] = "view"
CHANGE: Literal["change"] = "change"
Action = Literal["view", "change"]

_ROLES_ATTR = "_hookhub_brand_roles"
_MAX_DEPTH = 3

M = TypeVar("M", bound=Model)


def roles(user) -> dict[int, str]:
    """{brand id: role} of the user's memberships in active brands, read once per request
    (cached on the user object, which lives as long as the request)."""
    if not user.is_authenticated:
        return {}
    cached = getattr(user, _ROLES_ATTR, None)
    if cached is None:
        cached = dict(Membership.objects.filter(user=user, brand__is_active=True).values_list("brand_id", "role"))
        setattr(user, _ROLES_ATTR, cached)
    return cached


def _allowed(user, action: Action) -> set[int]:
    if action not in (VIEW, CHANGE):
        raise ValueError(f"Unknown action {action!r}: use scoping.VIEW or scoping.CHANGE.")
    return {brand_id for brand_id, role in roles(user).items() if action == VIEW or role == Role.ADMIN}


def has_brands(*, user, action: Action) -> bool:
    """True when the user may view (or change) something in at least one brand."""
    return bool(user.is_active and user.is_superuser) or bool(_allowed(user, action))


def brand_path(model: type[Model]) -> str | None:
    """The ORM path from ``model`` to its brand (``"pk"`` for Brand itself), or
    None when the model belongs to no brand."""
    return _brand_path(model)


@functools.cache
def _brand_path(model: type[Model]) -> str | None:
    if model is Brand:
        return "pk"
    declared = getattr(model, "brand_scope_path", None)
    if declared:
        return declared
    live = getattr(model, "instance_type", None)  # a django-simple-history version of a model
    if live is not None and live is not model:
        path = _brand_path(live)
        # The version keeps the object's id in a plain field; its own pk is history_id.
        return live._meta.pk.attname if path == "pk" else path
    frontier: list[tuple[type[Model], str]] = [(model, "")]
    for _depth in range(_MAX_DEPTH):
        found: set[str] = set()
        following: list[tuple[type[Model], str]] = []
        for current, prefix in frontier:
            for field in current._meta.concrete_fields:
                if not (field.many_to_one or field.one_to_one) or field.related_model is None:
                    continue
                if field.related_model is Brand:
                    found.add(prefix + field.name)
                else:
                    following.append((field.related_model, f"{prefix}{field.name}__"))  # type: ignore[arg-type]
        if len(found) > 1:
            raise ImproperlyConfigured(
                f"{model._meta.label} reaches a brand by {sorted(found)}: declare brand_scope_path on the model."
            )
        if found:
            return found.pop()
        frontier = following
    return None


def _required_path(model: type[Model]) -> str:
    path = brand_path(model)
    if path is None:
        raise ImproperlyConfigured(f"{model._meta.label} belongs to no brand; it cannot be scoped.")
    return path


def restrict(queryset: QuerySet[M], *, user, action: Action, per_brand: bool = False) -> QuerySet[M]:
    """The rows of ``queryset`` in brands where the user may do ``action``.

    ``per_brand``: name the brands even for a superuser (every brand), so a
    lookup on an index that leads with the brand, such as (brand, customer_id),
    stays one index probe per brand instead of a scan of the table."""
    path = _required_path(queryset.model)
    if user.is_active and user.is_superuser:
        if not per_brand:
            return queryset
        return queryset.filter(**{f"{path}__in": list(Brand.objects.values_list("pk", flat=True))})
    return queryset.filter(**{f"{path}__in": sorted(_allowed(user, action))})


def brands(*, user, action: Action) -> QuerySet[Brand]:
    """The brands where the user may do ``action`` (superusers: every brand)."""
    return restrict(Brand.objects.all(), user=user, action=action)


def brand_id_of(obj: Model) -> int | None:
    """Follow the model's brand path on an instance (``customer__brand`` -> obj.customer.brand_id)."""
    path = _required_path(type(obj))
    if path == "pk":
        return obj.pk
    *hops, last = path.split("__")
    target: Model | None = obj
    for hop in hops:
        target = getattr(target, hop, None)
        if target is None:
            return None
    return getattr(target, f"{last}_id", None)


def permits(*, user, obj: Model, action: Action) -> bool:
    """May the user do ``action`` on this one object?"""
    if user.is_active and user.is_superuser:
        return True
    return brand_id_of(obj) in _allowed(user, action)
