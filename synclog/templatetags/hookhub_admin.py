"""Admin index helpers: the "Start here" panel with the user's brands and next steps."""

from __future__ import annotations

from django import template

from hub.models import Credential
from hub.tenancy import admin_brand_ids, brand_roles, brands_for

register = template.Library()


@register.inclusion_tag("admin/hookhub/start_here.html", takes_context=True)
def hookhub_start_here(context):
    user = context["request"].user
    brands = list(brands_for(user))
    has_keys = Credential.objects.filter(brand__in=brands).exists() if brands else False
    roles = {} if user.is_superuser else brand_roles(user)
    for brand in brands:
        brand.user_role = "superuser" if user.is_superuser else roles.get(brand.pk, "")
    can_configure = user.is_superuser or bool(admin_brand_ids(user))
    return {"brands": brands, "has_keys": has_keys, "is_superuser": user.is_superuser, "can_configure": can_configure}
