"""Admin index helpers: the "Start here" panel with the user's brands and next steps."""

from __future__ import annotations

from django import template

from hub.models import Credential
from hub.tenancy import brands_for

register = template.Library()


@register.inclusion_tag("admin/hookhub/start_here.html", takes_context=True)
def hookhub_start_here(context):
    user = context["request"].user
    brands = list(brands_for(user))
    has_keys = Credential.objects.filter(brand__in=brands).exists() if brands else False
    return {"brands": brands, "has_keys": has_keys, "is_superuser": user.is_superuser}
