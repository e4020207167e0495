"""Config as code, section ``lookup_sources`` (docs/config-as-code.md): a brand's
lookup sources by name, secrets as {"env": NAME} references, never in clear.
Registered with hooks.outbound.configio in AppConfig.ready()."""

from __future__ import annotations

from typing import Any

from hooks.outbound.configio import (
    SecretResolver,
    _assign,
    _check_keys,
    _entry_name,
    _entry_values,
    _validation_errors,
    secret_ref,
)
from hub.models import Brand

from .models import SECRET_FIELDS, LookupSource

FIELDS = (
    "enabled",
    "order",
    "kind",
    "method",
    "url",
    "headers",
    "body",
    "auth_type",
    "auth_username",
    "api_key_header",
    "verify_ssl",
    "timeout_ms",
    "cache_seconds",
    "stale_seconds",
    "negative_cache_seconds",
    "keep_as_customer",
    "mapping",
)


def lookup_sources_export(brand: Brand) -> list[dict]:
    out = []
    for source in LookupSource.objects.filter(brand=brand).order_by("order", "name"):
        item: dict[str, Any] = {"name": source.name, **{name: getattr(source, name) for name in FIELDS}}
        for name in SECRET_FIELDS:
            item[name] = secret_ref(brand, getattr(source, name), "source", source.name, name)
        out.append(item)
    return out


def lookup_sources_load(brand: Brand, items: Any, secrets: SecretResolver, errors: list[str], apply: bool) -> int:
    if not isinstance(items, list):
        errors.append("lookup_sources: expected a list.")
        return 0
    existing = {source.name: source for source in LookupSource.objects.filter(brand=brand)}
    seen: set[str] = set()
    planned = []
    for index, item in enumerate(items):
        where = f"lookup_sources[{index}]"
        if not _check_keys(item, {"name", *FIELDS, *SECRET_FIELDS}, where, errors):
            continue
        name = _entry_name(item, where, seen, errors)
        if name is None:
            continue
        source = existing.get(name) or LookupSource(brand=brand, name=name)
        values = _entry_values(item, FIELDS, SECRET_FIELDS, where, secrets, errors)
        changed = _assign(source, values) or source.pk is None
        _validation_errors(source, where, errors, exclude=["brand"])
        planned.append((source, changed))
    if not apply or errors:
        return 0
    count = 0
    for source, changed in planned:
        if changed:
            source.save()
            count += 1
    return count
