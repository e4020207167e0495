"""Admin index helpers: the "Start here" panel with the user's brands and next steps."""

from __future__ import annotations

from django import template

from hub import scoping
from hub.models import Credential

register = template.Library()


@register.inclusion_tag("admin/hookhub/start_here.html", takes_context=True)
def hookhub_start_here(context):
    user = context["request"].user
    brands = list(scoping.brands(user=user, action=scoping.VIEW))
    has_keys = bool(brands) and scoping.restrict(Credential.objects.all(), user=user, action=scoping.VIEW).exists()
    roles = {} if user.is_superuser else scoping.roles(user)
    for brand in brands:
        brand.user_role = "superuser" if user.is_superuser else roles.get(brand.pk, "")
    can_configure = scoping.has_brands(user=user, action=scoping.CHANGE)
    return {"brands": brands, "has_keys": has_keys, "is_superuser": user.is_superuser, "can_configure": can_configure}
