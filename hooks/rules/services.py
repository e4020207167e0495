"""Dispatcher rules: firing on hub events, presets, preview, export and import.

EddyDesk "Webhooks": on an event, when the rule's conditions hold, a webhook
is sent (GET/POST/PUT/PATCH/DELETE; JSON, XML or form body built from tags).
The dispatcher subscribes to every hub event (``hub.events.subscribe``) and,
inside the emitting transaction, creates one Delivery per matching enabled
rule on the shared engine (``hooks.outbound.engine.outbox.delivery_create``), in
rule order. The delivery commits (and is enqueued) with the change that caused
it, or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from hooks.outbound.configio import (
    TRAFFIC_FIELDS,
    SecretResolver,
    exported_value,
    register_config_section,
    secret_ref,
    traffic_values,
)
from hooks.outbound.models import SECRET_FIELDS
from hooks.outbound.registry import register_source
from hub import redaction
from hub.events import Event, subscribe
from hub.models import Brand

from .conditions import ConditionError, Evaluation, conditions_clean, evaluate
from .models import EventRule
from .presets import preset_get

SOURCE_KIND = "rule"

# What rules_export writes and rules_import reads (secrets only as environment references).
EXPORT_FIELDS = (
    "name",
    "enabled",
    "order",
    "event_types",
    "conditions",
    "description",
    "method",
    "url",
    "headers",
    "body",
    "body_format",
    "auth_type",
    "auth_username",
    "api_key_header",
    "verify_ssl",
    "timeout_seconds",
    *TRAFFIC_FIELDS,
)


# ---------------------------------------------------------------- the context of a rule


def _admin_base() -> str:
    return settings.HUB_ADMIN_BASE_URL.rstrip("/")


def rule_context(*, brand_id: int, event_type: str, data: dict[str, Any], brand: Brand | None = None) -> dict[str, Any]:
    """What conditions test and templates use: ``event``, ``customer``, ``call``,
    ``brand`` and ``hub``. Customers carry ``admin_url`` (their page in the admin)
    and ``customFields`` (the custom fields by key); inbound events carry
    ``admin_url`` (the stored event in the admin)."""
    base = _admin_base()
    event = dict(data.get("event") or {})
    event["type"] = event_type
    if "changed" in data:
        event["changed"] = data["changed"]
    if event.get("inbound_event_id"):
        event["admin_url"] = f"{base}/admin/inbound/inboundevent/{event['inbound_event_id']}/change/"
    customer = dict(data.get("customer") or {})
    if customer:
        customer.setdefault("customFields", customer.get("custom_fields", {}))
        if customer.get("id") and event_type != "customer.deleted":
            customer["admin_url"] = f"{base}/admin/customers/customer/{customer['id']}/change/"
    brand_tokens: Mapping[str, object]
    if brand is not None:
        brand_tokens = {"slug": brand.slug, "name": brand.name}
    else:
        brand_tokens = Brand.objects.filter(pk=brand_id).values("slug", "name").first() or {}
    return {
        "event": event,
        "customer": customer,
        "call": dict(data.get("call") or {}),
        "brand": brand_tokens,
        "hub": {"admin_url": f"{base}/admin/"},
    }


# ---------------------------------------------------------------- firing


class _TransactionRules:
    """The brands' enabled rules, read once per transaction.

    A bulk import emits one event per customer inside one transaction; reading
    the rules for each would cost a query per customer. The cache lives in the
    transaction's on-commit list, so it ends with the transaction (commit or
    rollback, savepoint rollback included) and is never seen by another one;
    saving or deleting a rule clears it.
    """

    def __init__(self) -> None:
        self.by_brand: dict[int, list[EventRule]] = {}

    def __call__(self) -> None:  # on commit: nothing to do, the cache just ends
        pass


def _transaction_rules() -> _TransactionRules | None:
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        return None
    for _sids, func, _robust in reversed(connection.run_on_commit):
        if isinstance(func, _TransactionRules):
            return func
    cache = _TransactionRules()
    transaction.on_commit(cache)
    return cache


@receiver([post_save, post_delete], sender=EventRule)
def _rules_changed(sender, instance: EventRule, **kwargs) -> None:
    connection = transaction.get_connection()
    for _sids, func, _robust in connection.run_on_commit:
        if isinstance(func, _TransactionRules):
            func.by_brand.pop(instance.brand_id, None)


def _rules_for(brand_id: int, event_type: str) -> list[EventRule]:
    cache = _transaction_rules()
    rules = cache.by_brand.get(brand_id) if cache is not None else None
    if rules is None:
        rules = list(
            EventRule.objects.filter(brand_id=brand_id, enabled=True)
            .select_related("brand")
            .only("pk", "brand__slug", "brand__name", "name", "event_types", "conditions", "order")
            .order_by("order", "pk")
        )
        if cache is not None:
            cache.by_brand[brand_id] = rules
    return [rule for rule in rules if event_type in (rule.event_types or [])]


def rule_matches(*, rule: EventRule, context: dict[str, Any]) -> Evaluation:
    """Saved conditions are already cleaned (EventRule.clean); a tree made
    invalid behind the admin's back never fires rather than failing the event."""
    try:
        return evaluate(rule.conditions or {"all": []}, context)
    except Exception:  # noqa: BLE001 - malformed stored tree: the rule does not fire
        try:
            return evaluate(conditions_clean(rule.conditions), context)
        except ConditionError:
            return Evaluation(False)


def rules_dispatch(event: Event) -> list[int]:
    """Every hub event: for each enabled rule of the brand that triggers on it
    and whose conditions hold, create a delivery (same transaction)."""
    from hooks.outbound.engine.outbox import delivery_create

    rules = _rules_for(event.brand_id, event.event_type)
    if not rules:
        return []
    context = rule_context(brand_id=event.brand_id, event_type=event.event_type, data=event.data, brand=rules[0].brand)
    created = []
    for rule in rules:
        if not rule_matches(rule=rule, context=context).matched:
            continue
        delivery = delivery_create(
            brand_id=event.brand_id,
            source_kind=SOURCE_KIND,
            source_id=rule.pk,
            source_name=rule.name,
            event_type=event.event_type,
            context=context,
            customer_id=event.customer_id,
        )
        created.append(delivery.pk)
    return created


@subscribe()
def _rules_dispatch_subscriber(event: Event) -> None:
    """The hub.events subscriber (subscribers return nothing): rules_dispatch."""
    rules_dispatch(event)


def _resolve(rule_id: int) -> EventRule | None:
    """The engine asks for the rule at send time: a deleted or disabled rule's
    pending deliveries are dropped as obsolete."""
    return EventRule.objects.filter(pk=rule_id, enabled=True).first()


def secret_tokens(rule: EventRule) -> dict[str, Any]:
    """``{{ secrets.api_key }}``: the rule's encrypted API key as a template
    value, for receivers that want a secret inside the URL (a Telegram bot
    token: ``https://api.telegram.org/bot{{ secrets.api_key|raw }}/sendMessage``).
    Added at send time only — never stored in the delivery's context — and
    masked wherever the engine logs the request."""
    return {"secrets": {"api_key": rule.api_key or ""}}


def _prepare(delivery) -> dict[str, Any]:
    rule = EventRule.objects.filter(pk=delivery.source_id).only("pk", "api_key").first()
    return secret_tokens(rule) if rule is not None else {}


register_source(SOURCE_KIND, _resolve, prepare=_prepare)


# ---------------------------------------------------------------- writes


def _rule_clean_and_save(rule: EventRule) -> EventRule:
    try:
        rule.full_clean()
    except ValidationError as exc:
        raise ValidationError(exc.message_dict) from exc
    rule.save()
    return rule


def rule_create(*, brand: Brand, **fields: Any) -> EventRule:
    """A rule from its fields (validated like the admin form)."""
    unknown = set(fields) - set(EXPORT_FIELDS) - set(SECRET_FIELDS)
    if unknown:
        raise TypeError(f"Unknown rule fields: {', '.join(sorted(unknown))}")
    return _rule_clean_and_save(EventRule(brand=brand, **fields))


def rule_create_from_preset(*, brand: Brand, preset: str, name: str = "") -> EventRule:
    """A disabled rule from one of the documented presets, named uniquely."""
    found = preset_get(preset)
    if found is None:
        raise ValidationError({"preset": [f"No preset {preset!r}."]})
    fields = {**found["rule"], "enabled": False}
    base = name or fields["name"]
    candidate, n = base, 2
    while EventRule.objects.filter(brand=brand, name=candidate).exists():
        candidate, n = f"{base} ({n})", n + 1
    fields["name"] = candidate[:150]
    return rule_create(brand=brand, **fields)


# ---------------------------------------------------------------- preview


@dataclass
class Preview:
    """What a rule would do with one event: trigger, conditions, the exact request."""

    event_type: str
    triggers: bool
    evaluation: Evaluation
    request: Any = None  # hooks.outbound.rendering.RenderedRequest
    error: str = ""
    context: dict[str, Any] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)

    @property
    def would_fire(self) -> bool:
        return self.triggers and self.evaluation.matched and not self.error

    @property
    def request_text(self) -> str:
        """The exact request with secrets masked (auth headers, keys in the URL,
        a Telegram bot token in the path): the admin never shows a secret back."""
        return "" if self.request is None else request_masked_text(self.request, secrets=self.secrets)


def request_masked_text(request, *, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """A rendered request as preview text, masked by hub.redaction."""
    return redaction.request_text(
        method=request.method, url=request.url, headers=request.headers, body=request.body, secrets=secrets
    )


def rule_preview(*, rule: EventRule, event_type: str, data: dict[str, Any]) -> Preview:
    """Evaluate and render without sending or storing anything."""
    from hooks.outbound.rendering import RenderError, render_request

    context = rule_context(brand_id=rule.brand_id, event_type=event_type, data=data)
    evaluation = rule_matches(rule=rule, context=context)
    preview = Preview(event_type, event_type in (rule.event_types or []), evaluation, context=context)
    preview.secrets = redaction.config_secrets(rule)
    try:
        preview.request = render_request(rule, {**context, **secret_tokens(rule)})
    except RenderError as exc:
        preview.error = str(exc)
    return preview


def rule_preview_inbound_event(*, rule: EventRule, inbound_event) -> Preview:
    """Preview against a stored inbound event of the rule's brand."""
    from hooks.inbound.services import inbound_event_data

    if inbound_event.brand_id != rule.brand_id:
        raise ValidationError("The event belongs to another brand.")
    return rule_preview(rule=rule, event_type=inbound_event.event_type, data=inbound_event_data(event=inbound_event))


def rule_preview_customer(*, rule: EventRule, customer, event_type: str = "customer.updated") -> Preview:
    """Preview a customer.* rule against a customer as they are now."""
    from customers import documents

    if customer.brand_id != rule.brand_id:
        raise ValidationError("The customer belongs to another brand.")
    data = documents.load([customer.pk])[0]
    payload: dict[str, Any] = {"customer": documents.snapshot(data)}
    if event_type == "customer.updated":
        payload["changed"] = []
    return rule_preview(rule=rule, event_type=event_type, data=payload)


# ---------------------------------------------------------------- export / import

RULE_FIELDS = tuple(name for name in EXPORT_FIELDS if name != "name")


def rules_export(brand: Brand) -> list[dict[str, Any]]:
    """The brand's rules for ``export_config`` (section ``rules``). Secrets are
    never written: a set one becomes ``{"env": "HOOKHUB_<BRAND>_RULE_<NAME>_<FIELD>"}``,
    an empty one null (the file format of docs/config-as-code.md)."""
    exported = []
    for rule in EventRule.objects.filter(brand=brand).order_by("order", "name"):
        item: dict[str, Any] = {name: exported_value(name, getattr(rule, name)) for name in EXPORT_FIELDS}
        for name in SECRET_FIELDS:
            item[name] = secret_ref(brand, getattr(rule, name), "rule", rule.name, name)
        exported.append(item)
    return exported


def rules_config_load(brand: Brand, items: Any, secrets: SecretResolver, errors: list[str], apply: bool) -> int:
    """``import_config``'s ``rules`` section: rules matched by name within the
    brand (created or updated; rules missing from the file are left alone).
    With apply=False only validates, appending every problem to ``errors``
    (``rules[1].event_types: ...``); with apply=True saves what changed and
    returns how many rules it created or changed (0 for the same file twice)."""
    if not isinstance(items, list):
        errors.append("rules: expected a list.")
        return 0
    existing = {rule.name: rule for rule in EventRule.objects.filter(brand=brand)}
    seen: set[str] = set()
    planned: list[EventRule] = []
    for index, item in enumerate(items):
        where = f"rules[{index}]"
        if not isinstance(item, dict):
            errors.append(f"{where}: expected an object.")
            continue
        unknown = sorted(set(item) - {*EXPORT_FIELDS, *SECRET_FIELDS})
        if unknown:
            errors.append(f"{where}: unknown keys {', '.join(unknown)}.")
            continue
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            errors.append(f"{where}.name: a name is required.")
            continue
        if name in seen:
            errors.append(f"{where}.name: {name!r} appears twice.")
            continue
        seen.add(name)
        rule = existing.get(name) or EventRule(brand=brand, name=name)
        changed = rule.pk is None
        values = {attr: item[attr] for attr in RULE_FIELDS if attr in item}
        traffic_values(values, where, errors)
        if "conditions" in values:
            try:
                values["conditions"] = conditions_clean(values["conditions"])
            except ConditionError:
                pass  # reported by full_clean below, with the others
        for attr in SECRET_FIELDS:
            if attr in item:
                values[attr] = secrets(item[attr], f"{where}.{attr}", errors)
        for attr, value in values.items():
            if getattr(rule, attr) != value:
                setattr(rule, attr, value)
                changed = True
        try:
            rule.full_clean(exclude=["brand"], validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            for attr, messages in exc.message_dict.items():
                errors.extend(f"{where}.{attr}: {message}" for message in messages)
            continue
        if changed:
            planned.append(rule)
    if apply and not errors:
        for rule in planned:
            rule.save()
    return len(planned)


register_config_section("rules", rules_export, rules_config_load)


def rules_import(brand: Brand, data: Any, *, environ: dict[str, str] | None = None) -> int:
    """Import a ``rules`` section on its own (what ``import_config`` does for
    it): validate all, then save in one transaction. Secrets are
    ``{"env": NAME}`` references read from ``environ`` (default os.environ).
    Raises ValidationError({"rules": [every problem]}) and saves nothing when
    anything is wrong. Returns how many rules were created or changed."""
    errors: list[str] = []
    secrets = SecretResolver(environ)
    rules_config_load(brand, data, secrets, errors, False)
    if errors:
        raise ValidationError({"rules": errors})
    with transaction.atomic():
        changed = rules_config_load(brand, data, secrets, errors, True)
        if errors:  # a check only the database can make
            transaction.set_rollback(True)
            raise ValidationError({"rules": errors})
    return changed
