"""Config as code: a brand's outbound configuration as JSON (docs/config-as-code.md).

``config_export`` writes the brand's settings (region, time zone, M8Com links, matching policy,
unknown-caller handling), its CRM syncs, its operational webhook (and every section another app
registered, e.g. dispatcher rules) with secrets as references to environment
variables, never in clear. ``config_import`` validates the whole file first
and refuses it whole, with every reason, when anything is wrong; otherwise it
applies it in one transaction. Importing the same file twice changes nothing.
Objects are matched by name within the brand; objects missing from the file
are left alone.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from hub.models import Brand
from hub.redaction import mask, redact_url
from hub.services import brand_update

from .models import ACTION_ENABLED_DEFAULTS, SECRET_FIELDS, CrmAction, CrmSync, CrmSyncAction, OperationalWebhook
from .transport import signing_secret_errors

FORMAT = "hookhub-config"
VERSION = 1
SYNC_FIELDS = ("enabled", "auth_type", "auth_username", "api_key_header")
SYNC_SECRETS = ("auth_password", "api_key", "signing_secret")
# Traffic to a destination (hooks.outbound.engine.traffic), on CRM sync actions and dispatcher rules alike.
TRAFFIC_FIELDS = ("rate_limit_per_second", "stop_on_4xx")
ACTION_FIELDS = (
    "enabled",
    "method",
    "url",
    "headers",
    "body",
    "body_format",
    "verify_ssl",
    "timeout_seconds",
    "unique_id_path",
    "use_sync_auth",
    "auth_type",
    "auth_username",
    "api_key_header",
    *TRAFFIC_FIELDS,
)
# A tab's own secrets, as references like the sync's (never the values).
ACTION_SECRETS = ("auth_password", "api_key")


class ConfigError(Exception):
    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


def secret_env_name(brand: Brand, *parts: str) -> str:
    raw = "_".join(("HOOKHUB", brand.slug, *parts))
    return re.sub(r"[^A-Z0-9]+", "_", raw.upper()).strip("_")


def exported_value(name: str, value: Any) -> Any:
    """A plain field as written to the file: a key typed into a URL or a header
    before that was refused is masked (the file goes to version control); the
    import then refuses the masked value, pointing to the encrypted field."""
    if name == "url" and isinstance(value, str):
        return redact_url(value)
    if name == "headers" and isinstance(value, str):
        return mask(value)
    if isinstance(value, Decimal):  # a rate limit: a JSON number (10, 0.5), never a string
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def traffic_values(values: dict, where: str, errors: list[str]) -> None:
    """A rate limit as read from the file: a number (or null: no limit), made
    a Decimal so that the same file compares equal (0.1 is not Decimal("0.10"));
    the range and the two decimal places are checked by the model's full_clean."""
    rate = values.get("rate_limit_per_second")
    if rate is None:
        return
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        errors.append(f"{where}.rate_limit_per_second: a number of requests per second (e.g. 10 or 0.5), or null.")
        del values["rate_limit_per_second"]
        return
    values["rate_limit_per_second"] = Decimal(str(rate))


def secret_ref(brand: Brand, value: str, *parts: str) -> dict | None:
    """A set secret becomes {"env": NAME}; an empty one null."""
    return {"env": secret_env_name(brand, *parts)} if value else None


class SecretResolver:
    """Reads {"env": NAME} references from the environment, collecting what is missing."""

    def __init__(self, environ: dict[str, str] | None = None):
        self.environ = os.environ if environ is None else environ

    def __call__(self, value: Any, where: str, errors: list[str]) -> str:
        if value in (None, ""):
            return ""
        if not isinstance(value, dict) or set(value) != {"env"} or not isinstance(value["env"], str):
            errors.append(f'{where}: a secret must be null or {{"env": "VARIABLE_NAME"}}, never the value itself.')
            return ""
        name = value["env"]
        if name not in self.environ:
            errors.append(f"{where}: the environment variable {name} is not set.")
            return ""
        return self.environ[name]


# ------------------------------------------------------------------ sections


@dataclass(frozen=True)
class Section:
    """A part of the file. ``load(brand, items, secrets, errors, apply) -> changed``
    validates (apply=False, append to errors) or writes (apply=True)."""

    key: str
    export: Callable[[Brand], list[dict]]
    load: Callable[[Brand, list, SecretResolver, list[str], bool], int]


_sections: dict[str, Section] = {}


def register_config_section(key: str, export: Callable, load: Callable) -> None:
    """Other apps (dispatcher rules) add their part of the file here, in AppConfig.ready()."""
    _sections[key] = Section(key=key, export=export, load=load)


# ------------------------------------------------------------------ brand settings

BRAND_FIELDS = (
    "name",
    "default_region",
    "time_zone",
    "is_active",
    "create_activity_urls",
    "more_info_url_template",
    "create_unknown_callers",
    "lookup_budget_ms",
    "lookup_parallel",
    "lookup_priority_window_ms",
    "phone_address_types",
    "suffix_match_digits",
    "own_lines",
)


def brand_settings_export(brand: Brand) -> dict:
    return {name: getattr(brand, name) for name in BRAND_FIELDS}


def brand_settings_load(brand: Brand, item: Any, secrets: SecretResolver, errors: list[str], apply: bool) -> int:
    """The brand's own settings (the slug is the file's "brand"); keys left out keep their value."""
    where = "brand_settings"
    if not _check_keys(item, set(BRAND_FIELDS), where, errors):
        return 0
    target = brand if apply else Brand.objects.get(pk=brand.pk)
    changed = [name for name in BRAND_FIELDS if name in item and getattr(target, name) != item[name]]
    _assign(target, {name: item[name] for name in changed})
    _validation_errors(target, where, errors, exclude=["slug"])
    if not apply or errors or not changed:
        return 0
    brand_update(brand=target, update_fields=changed)  # also drops cached answers, follows a new time zone
    return 1


# ------------------------------------------------------------------ CRM syncs


def crm_syncs_export(brand: Brand) -> list[dict]:
    out = []
    for sync in CrmSync.objects.filter(brand=brand).prefetch_related("actions").order_by("name"):
        item: dict[str, Any] = {"name": sync.name}
        item.update({name: getattr(sync, name) for name in SYNC_FIELDS})
        for name in SYNC_SECRETS:
            item[name] = secret_ref(brand, getattr(sync, name), sync.name, name)
        item["actions"] = {
            action.action: {
                **{name: exported_value(name, getattr(action, name)) for name in ACTION_FIELDS},
                **{
                    name: secret_ref(brand, getattr(action, name), sync.name, action.action, name)
                    for name in ACTION_SECRETS
                },
            }
            for action in sorted(sync.actions.all(), key=lambda a: CrmAction.values.index(a.action))
        }
        out.append(item)
    return out


def _check_keys(item: dict, allowed: set[str], where: str, errors: list[str]) -> bool:
    if not isinstance(item, dict):
        errors.append(f"{where}: expected an object.")
        return False
    unknown = sorted(set(item) - allowed)
    if unknown:
        errors.append(f"{where}: unknown keys {', '.join(unknown)}.")
    return True


def _validation_errors(obj, where: str, errors: list[str], exclude: list[str]) -> None:
    try:
        obj.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            for message in messages:
                errors.append(f"{where}.{field}: {message}" if field != "__all__" else f"{where}: {message}")


def _assign(obj, values: dict) -> bool:
    changed = False
    for name, value in values.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            changed = True
    return changed


def _entry_name(item: dict, where: str, seen: set[str], errors: list[str]) -> str | None:
    """A list entry's name: required, and once per list (a second one is an error too)."""
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        errors.append(f"{where}.name: a name is required.")
        return None
    if name in seen:
        errors.append(f"{where}.name: {name!r} appears twice.")
    seen.add(name)
    return name


def _entry_values(
    item: dict,
    fields: Iterable[str],
    secret_fields: Iterable[str],
    where: str,
    secrets: SecretResolver,
    errors: list[str],
) -> dict:
    """The entry's plain values as written, and its secrets resolved (never literal values)."""
    values = {field: item[field] for field in fields if field in item}
    for field in secret_fields:
        if field in item:
            values[field] = secrets(item[field], f"{where}.{field}", errors)
    return values


def crm_syncs_load(brand: Brand, items: list, secrets: SecretResolver, errors: list[str], apply: bool) -> int:
    if not isinstance(items, list):
        errors.append("crm_syncs: expected a list.")
        return 0
    changed = 0
    seen: set[str] = set()
    existing = {s.name: s for s in CrmSync.objects.filter(brand=brand).prefetch_related("actions")}
    for index, item in enumerate(items):
        where = f"crm_syncs[{index}]"
        if not _check_keys(item, {"name", *SYNC_FIELDS, *SYNC_SECRETS, "actions"}, where, errors):
            continue
        name = _entry_name(item, where, seen, errors)
        if name is None:
            continue
        sync = existing.get(name) or CrmSync(brand=brand, name=name)
        values = _entry_values(item, SYNC_FIELDS, SYNC_SECRETS, where, secrets, errors)
        sync_changed = _assign(sync, values) or sync.pk is None
        _validation_errors(sync, where, errors, exclude=["brand"])
        actions = item.get("actions") or {}
        if not _check_keys(actions, set(CrmAction.values), f"{where}.actions", errors):
            continue
        current = {a.action: a for a in sync.actions.all()} if sync.pk else {}
        planned = []
        for kind, spec in actions.items():
            action_where = f"{where}.actions.{kind}"
            if not _check_keys(spec, {*ACTION_FIELDS, *ACTION_SECRETS}, action_where, errors):
                continue
            # A new tab without "enabled" starts as in Deskpro (ACTION_ENABLED_DEFAULTS);
            # an existing one keeps its value.
            action = current.get(kind) or CrmSyncAction(action=kind, enabled=ACTION_ENABLED_DEFAULTS.get(kind, False))
            action_values = _entry_values(spec, ACTION_FIELDS, ACTION_SECRETS, action_where, secrets, errors)
            traffic_values(action_values, action_where, errors)
            action_changed = _assign(action, action_values)
            _validation_errors(action, action_where, errors, exclude=["sync", *SECRET_FIELDS])
            planned.append((action, action_changed or action.pk is None))
        if apply and not errors:
            if sync_changed:
                sync.save()
                changed += 1
            for action, action_changed in planned:
                if action_changed:
                    action.sync = sync
                    action.save()
                    changed += 1
    return changed


# ------------------------------------------------------------------ the operational webhook (health alerts)

OPS_FIELDS = ("url", "enabled")


def operational_webhook_export(brand: Brand) -> dict | None:
    """The brand's operational webhook (destination.failing / disabled / recovered), or null."""
    hook = OperationalWebhook.objects.filter(brand=brand).first()
    if hook is None:
        return None
    return {
        **{name: exported_value(name, getattr(hook, name)) for name in OPS_FIELDS},
        "signing_secret": secret_ref(brand, hook.signing_secret, "operational_webhook", "signing_secret"),
    }


def operational_webhook_load(brand: Brand, item: Any, secrets: SecretResolver, errors: list[str], apply: bool) -> int:
    """Create or update the brand's operational webhook; null leaves it as it is
    (like every object missing from the file). It is always signed: a new one
    needs its secret, and an existing one keeps its own unless the file gives one."""
    where = "operational_webhook"
    if item is None or not _check_keys(item, {*OPS_FIELDS, "signing_secret"}, where, errors):
        return 0
    hook = OperationalWebhook.objects.filter(brand=brand).first() or OperationalWebhook(brand=brand)
    reported = len(errors)
    values = _entry_values(item, OPS_FIELDS, ("signing_secret",), where, secrets, errors)
    if len(errors) == reported and ("signing_secret" in values or hook.pk is None):
        secret = values.get("signing_secret", "")
        problems = signing_secret_errors(secret) if secret else ['it is always signed: give {"env": NAME}.']
        errors.extend(f"{where}.signing_secret: {problem}" for problem in problems)
    changed = _assign(hook, values) or hook.pk is None
    _validation_errors(hook, where, errors, exclude=["brand"])
    if not apply or errors or not changed:
        return 0
    hook.save()
    return 1


register_config_section("brand_settings", brand_settings_export, brand_settings_load)
register_config_section("crm_syncs", crm_syncs_export, crm_syncs_load)
register_config_section("operational_webhook", operational_webhook_export, operational_webhook_load)


# ------------------------------------------------------------------ file


def config_export(*, brand: Brand) -> dict:
    data: dict[str, Any] = {"format": FORMAT, "version": VERSION, "brand": brand.slug}
    for key, section in _sections.items():
        data[key] = section.export(brand)
    return data


def secret_references(data: dict) -> list[str]:
    """Every environment variable a file refers to (to tell the operator what to set)."""
    found: list[str] = []

    def walk(value):
        if isinstance(value, dict):
            if set(value) == {"env"} and isinstance(value["env"], str):
                found.append(value["env"])
                return
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(data)
    return sorted(set(found))


def config_import(*, data: Any, brand_slug: str | None = None, environ: dict[str, str] | None = None) -> int:
    """Validate the whole file, then apply it in one transaction. Returns the
    number of objects created or changed (0 when the file matches the database).
    Raises ConfigError with every reason, changing nothing, when the file is invalid."""
    errors: list[str] = []
    if not isinstance(data, dict):
        raise ConfigError(["The file must hold a JSON object."])
    if data.get("format") != FORMAT:
        errors.append(f'format: expected "{FORMAT}".')
    if data.get("version") != VERSION:
        errors.append(f"version: expected {VERSION}.")
    unknown = sorted(set(data) - {"format", "version", "brand", *_sections})
    if unknown:
        errors.append(f"unknown sections: {', '.join(unknown)}.")
    slug = brand_slug or data.get("brand")
    brand = Brand.objects.filter(slug=slug).first() if isinstance(slug, str) else None
    if brand is None:
        errors.append(f"brand: no brand with slug {slug!r}.")
        raise ConfigError(errors)
    settings_item = data.get("brand_settings")
    if isinstance(settings_item, dict) and data.get("brand") != brand.slug:
        # A copy into another brand (--brand) takes its settings but keeps its own
        # name and its active flag (a staging file must never switch production off).
        data = {**data, "brand_settings": {k: v for k, v in settings_item.items() if k not in ("name", "is_active")}}
    secrets = SecretResolver(environ)
    for key, section in _sections.items():
        if key in data:
            section.load(brand, data[key], secrets, errors, False)
    if errors:
        raise ConfigError(errors)
    changed = 0
    with transaction.atomic():
        for key, section in _sections.items():
            if key in data:
                changed += section.load(brand, data[key], secrets, errors, True)
        if errors:  # a check only the database can make (e.g. a constraint)
            transaction.set_rollback(True)
            raise ConfigError(errors)
    return changed
