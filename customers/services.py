"""Every write to customers goes through here (admin, API, import, inbound events).

Each service runs in one transaction that also rebuilds the stored lookup
answers, bumps the brand's generation (the lookup cache key) and emits
``customer.created`` / ``customer.updated`` / ``customer.deleted`` with a
snapshot, so outbound deliveries commit together with the change.
"""

from __future__ import annotations

import secrets
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Exists, OuterRef
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.utils import timezone

from hub.events import emit
from hub.models import Brand
from hub.services import brand_touch

from . import documents
from .models import Activity, ActivityKind, Address, AddressKind, Customer, CustomField
from .normalize import InvalidAddress, digits_reversed, normalize_address

CUSTOMER_FIELDS = (
    "first_name",
    "last_name",
    "display_name",
    "company_name",
    "job_title",
    "summary",
    "time_zone",
    "avatar_url",
    "cover_photo_url",
    "more_info_url",
)
ACTIVITY_FIELDS = tuple(
    f.name
    for f in Activity._meta.get_fields()
    if getattr(f, "concrete", False) and f.name not in {"id", "customer", "kind", "occurred_at", "created_at"}
)


class InstanceBuilder:
    """Builds unsaved model instances without ``Model.__init__``.

    Bulk imports build hundreds of thousands of Address / CustomField / Activity /
    Customer objects; ``__init__`` (its loop over every field, the pre_init /
    post_init signals, the foreign-key descriptors) cost about a quarter of an
    import. The instance gets every concrete field's default, then the given
    values (by attname), and a fresh ``_state``, as ``__init__`` would leave it.
    When a receiver listens to pre_init / post_init for the model, the normal
    constructor is used so the receiver still sees every instance.
    """

    def __init__(self, model: type[models.Model]) -> None:
        self.model = model
        fields = model._meta.concrete_fields
        # Field.default is the NOT_PROVIDED class when a field has none: ask has_default() first.
        self.callable_defaults = [f for f in fields if f.has_default() and callable(f.default)]
        self.defaults = {f.attname: f.get_default() for f in fields if f not in self.callable_defaults}
        self.attnames = frozenset(f.attname for f in fields)

    def __call__(self, values: dict[str, Any], related: dict[str, models.Model] | None = None) -> Any:
        model = self.model
        if not values.keys() <= self.attnames:
            raise TypeError(f"{model.__name__} has no field(s) {', '.join(sorted(values.keys() - self.attnames))}.")
        if pre_init.has_listeners(model) or post_init.has_listeners(model):
            return model(**values, **(related or {}))
        obj = object.__new__(model)
        state = obj.__dict__
        state["_state"] = ModelState()
        state.update(self.defaults)
        for f in self.callable_defaults:
            state[f.attname] = f.get_default()
        state.update(values)
        if related:
            for name, value in related.items():
                state[model._meta.get_field(name).attname] = value.pk  # type: ignore[union-attr]  # a foreign key
                obj._state.fields_cache[name] = value
        return obj


address_build = InstanceBuilder(Address)
custom_field_build = InstanceBuilder(CustomField)
# Enum .values builds a new list on every call; these are checked per row in bulk imports.
_ADDRESS_KINDS = frozenset(AddressKind.values)
_ACTIVITY_KINDS = frozenset(ActivityKind.values)


def new_customer_id() -> str:
    return f"HH{secrets.token_hex(6).upper()}"


def addresses_clean(*, brand: Brand, addresses: Iterable[Mapping[str, Any]]) -> list[Address]:
    """Validate and normalize; every bad entry is reported, nothing is stored half-valid."""
    cleaned: list[Address] = []
    errors: dict[str, list[str]] = {}
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(addresses):
        kind = str(item.get("kind") or item.get("type") or "").strip().lower()
        value = str(item.get("value") or item.get("address") or "").strip()
        if kind == "phone":
            kind = AddressKind.TELEPHONE
        if kind not in _ADDRESS_KINDS:
            errors[f"addresses[{index}].type"] = [f"{kind!r} is not one of {', '.join(AddressKind.values)}."]
            continue
        try:
            normalized = normalize_address(kind, value, brand.default_region)
        except InvalidAddress as exc:
            errors[f"addresses[{index}].address"] = [str(exc)]
            continue
        if (kind, normalized) in seen:
            continue
        seen.add((kind, normalized))
        cleaned.append(
            address_build(
                {
                    "brand_id": brand.pk,
                    "kind": kind,
                    "value": value,
                    "normalized": normalized,
                    "digits_reversed": digits_reversed(kind, normalized),
                    "comment": str(item.get("comment") or "")[:100],
                    "position": len(cleaned),
                }
            )
        )
    if errors:
        raise ValidationError(errors)
    return cleaned


def custom_fields_clean(custom_fields: Iterable[Any]) -> list[CustomField]:
    """Accepts [("key", "value")], [{"key": k, "value": v}] or Omnidesk's [{"key": "value"}]."""
    cleaned: list[CustomField] = []
    errors: dict[str, list[str]] = {}
    seen: set[str] = set()
    for index, item in enumerate(custom_fields):
        if isinstance(item, Mapping) and set(item) == {"key", "value"}:
            pairs = [(item["key"], item["value"])]
        elif isinstance(item, Mapping):
            pairs = list(item.items())
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            pairs = [tuple(item)]
        else:
            errors[f"customFields[{index}]"] = ['Expected an object such as {"customerType": "unlimited"}.']
            continue
        for key, value in pairs:
            key = str(key).strip()
            if not key or len(key) > 100:
                errors[f"customFields[{index}]"] = ["A key of 1 to 100 characters is required."]
                continue
            if key in seen:
                errors[f"customFields[{index}]"] = [f"The key {key!r} appears twice."]
                continue
            seen.add(key)
            text = "" if value is None else (value if isinstance(value, str) else documents.dumps(value))
            cleaned.append(custom_field_build({"position": len(cleaned), "key": key, "value": text}))
    if errors:
        raise ValidationError(errors)
    return cleaned


def _customer_clean(customer: Customer) -> None:
    try:
        customer.full_clean(exclude=["brand", "omnidesk_document", "m8com_document"], validate_unique=False)
    except ValidationError as exc:
        raise ValidationError(exc.message_dict) from exc
    clash = Customer.objects.filter(brand_id=customer.brand_id, customer_id=customer.customer_id)
    if customer.pk:
        clash = clash.exclude(pk=customer.pk)
    if clash.exists():
        raise ValidationError({"customer_id": [f"A customer with ID {customer.customer_id!r} exists in this brand."]})


def _replace_children(
    customer: Customer, addresses: list[Address] | None, custom_fields: list[CustomField] | None
) -> None:
    if addresses is not None:
        Address.objects.filter(customer=customer).delete()
        for address in addresses:
            address.customer = customer
            address.brand_id = customer.brand_id
        Address.objects.bulk_create(addresses)
    if custom_fields is not None:
        CustomField.objects.filter(customer=customer).delete()
        for custom_field in custom_fields:
            custom_field.customer = customer
        CustomField.objects.bulk_create(custom_fields)


def customers_refresh(*, customer_ids: list[int]) -> dict[int, documents.CustomerData]:
    """Rebuild the stored lookup answers and invalidate the brand's lookup cache."""
    loaded = documents.load(customer_ids)
    for data in loaded:
        data.customer.omnidesk_document, data.customer.m8com_document = documents.render(data)
    Customer.objects.bulk_update(
        [data.customer for data in loaded], ["omnidesk_document", "m8com_document"], batch_size=500
    )
    for brand_id in {data.customer.brand_id for data in loaded}:
        brand_touch(brand_id=brand_id)
    return {data.customer.pk: data for data in loaded}


def _stored_answers_rebuild(
    *, brand_id: int, having: Exists, build: Callable[[documents.CustomerData], None], field: str, batch_size: int
) -> int:
    """Rebuild one stored answer (``field``) of the brand's customers matching
    ``having``, in batches, in the caller's transaction; no customer events (no
    customer changed). Returns the number of customers rebuilt."""
    pks = list(Customer.objects.filter(brand_id=brand_id).filter(having).order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(pks), batch_size):
        loaded = documents.load(pks[start : start + batch_size])
        for data in loaded:
            build(data)
        Customer.objects.bulk_update([data.customer for data in loaded], [field], batch_size=500)
    if pks:
        brand_touch(brand_id=brand_id)
    return len(pks)


def customers_time_zone_rebuild(*, brand_id: int, batch_size: int = 1000) -> int:
    """Rebuild the stored Omnidesk answers of the brand's customers that have a
    timeline, after the brand's time zone changed (Omnidesk ``lastUpdate`` is in
    the brand's time zone; nothing else in the stored answers depends on it).
    In the caller's transaction; no customer events (no customer changed).
    Returns the number of customers rebuilt."""

    def build(data: documents.CustomerData) -> None:
        tz = zoneinfo.ZoneInfo(data.customer.brand.time_zone)
        data.customer.omnidesk_document = documents.dumps(documents.omnidesk_element(data, tz))

    return _stored_answers_rebuild(
        brand_id=brand_id,
        having=Exists(Activity.objects.filter(customer_id=OuterRef("pk"))),
        build=build,
        field="omnidesk_document",
        batch_size=batch_size,
    )


def on_brand_time_zone_changed(sender, *, brand_id: int, **kwargs) -> None:
    """hub.events.brand_time_zone_changed (connected in CustomersConfig.ready): the
    stored Omnidesk answers follow the brand's new time zone, in the change's transaction."""
    customers_time_zone_rebuild(brand_id=brand_id)


def customers_phone_numbers_rebuild(*, brand_id: int, kinds: Iterable[str], batch_size: int = 1000) -> int:
    """Rebuild the stored M8Com contacts of the brand's customers holding an
    address of one of ``kinds`` (the types that started or stopped counting as a
    phone): the card's ``phoneNumbers`` list the numbers of the types the brand's
    policy counts (customers.documents.m8com_phone_numbers). Returns the number rebuilt."""

    def build(data: documents.CustomerData) -> None:
        data.customer.m8com_document = documents.dumps(documents.m8com_contact(data))

    return _stored_answers_rebuild(
        brand_id=brand_id,
        having=Exists(Address.objects.filter(customer_id=OuterRef("pk"), kind__in=list(kinds))),
        build=build,
        field="m8com_document",
        batch_size=batch_size,
    )


def on_brand_phone_address_types_changed(sender, *, brand_id: int, old_types, new_types, **kwargs) -> None:
    """hub.events.brand_phone_address_types_changed (connected in CustomersConfig.ready):
    the stored M8Com contacts of the customers concerned, in the change's transaction."""
    changed = set(old_types or []) ^ set(new_types or [])
    if changed:
        customers_phone_numbers_rebuild(brand_id=brand_id, kinds=sorted(changed))


def customer_event_emit(*, event_type: str, data: documents.CustomerData, changed: list[str] | None = None) -> None:
    """Emit customer.created / updated / deleted with {"customer": snapshot, "changed": [...]}.

    Must run inside the transaction that made the change (bulk import uses it per customer).
    """
    payload: dict[str, Any] = {"customer": documents.snapshot(data)}
    if changed is not None:
        payload["changed"] = changed
    emit(brand_id=data.customer.brand_id, event_type=event_type, data=payload, customer_id=data.customer.pk)


def _emit_customer(event_type: str, data: documents.CustomerData, changed: list[str] | None = None) -> None:
    customer_event_emit(event_type=event_type, data=data, changed=changed)


def customer_create(
    *,
    brand: Brand,
    customer_id: str = "",
    addresses: Iterable[Mapping[str, Any]] = (),
    custom_fields: Iterable[Any] = (),
    activities: Iterable[Mapping[str, Any]] = (),
    **fields: Any,
) -> Customer:
    unknown = set(fields) - set(CUSTOMER_FIELDS)
    if unknown:
        raise TypeError(f"Unknown customer fields: {', '.join(sorted(unknown))}")
    customer = Customer(brand=brand, customer_id=str(customer_id).strip() or new_customer_id(), **fields)
    errors: dict[str, list[str]] = {}
    cleaned_addresses: list[Address] = []
    cleaned_fields: list[CustomField] = []
    cleaned_activities: list[Activity] = []
    for step in (
        lambda: _customer_clean(customer),
        lambda: cleaned_addresses.extend(addresses_clean(brand=brand, addresses=addresses)),
        lambda: cleaned_fields.extend(custom_fields_clean(custom_fields)),
        lambda: cleaned_activities.extend(activities_clean(activities)),
    ):
        try:
            step()
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        customer.save()
        _replace_children(customer, cleaned_addresses, cleaned_fields)
        for activity in cleaned_activities:
            activity.customer = customer
        Activity.objects.bulk_create(cleaned_activities)
        data = customers_refresh(customer_ids=[customer.pk])[customer.pk]
        _emit_customer("customer.created", data)
    return data.customer


def customer_update(
    *,
    customer: Customer,
    addresses: Iterable[Mapping[str, Any]] | None = None,
    custom_fields: Iterable[Any] | None = None,
    **fields: Any,
) -> Customer:
    """Change fields (and, when given, replace addresses / custom fields).

    ``customer.updated`` is emitted only when something a receiver could see changed.
    """
    unknown = set(fields) - set(CUSTOMER_FIELDS) - {"customer_id"}
    if unknown:
        raise TypeError(f"Unknown customer fields: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        customer = Customer.objects.select_for_update().select_related("brand").get(pk=customer.pk)
        before = documents.snapshot(documents.load([customer.pk])[0])
        for name, value in fields.items():
            setattr(customer, name, value)
        errors: dict[str, list[str]] = {}
        cleaned_addresses = cleaned_fields = None
        try:
            _customer_clean(customer)
        except ValidationError as exc:
            errors.update(exc.message_dict)
        if addresses is not None:
            try:
                cleaned_addresses = addresses_clean(brand=customer.brand, addresses=addresses)
            except ValidationError as exc:
                errors.update(exc.message_dict)
        if custom_fields is not None:
            try:
                cleaned_fields = custom_fields_clean(custom_fields)
            except ValidationError as exc:
                errors.update(exc.message_dict)
        if errors:
            raise ValidationError(errors)
        customer.save()
        _replace_children(customer, cleaned_addresses, cleaned_fields)
        data = customers_refresh(customer_ids=[customer.pk])[customer.pk]
        after = documents.snapshot(data)
        changed = sorted(key for key in after if key != "updated_at" and after[key] != before.get(key))
        if changed:
            _emit_customer("customer.updated", data, changed)
    return data.customer


def customer_saved_in_admin(*, customer: Customer, created: bool) -> Customer:
    """After the admin saved a customer and its inlines (inside the admin's
    transaction): rebuild the lookup answers and emit the event."""
    with transaction.atomic():
        data = customers_refresh(customer_ids=[customer.pk])[customer.pk]
        _emit_customer("customer.created" if created else "customer.updated", data, None if created else ["admin"])
    return data.customer


def customer_delete(*, customer: Customer) -> None:
    with transaction.atomic():
        loaded = documents.load([customer.pk])
        if not loaded:
            return
        _emit_customer("customer.deleted", loaded[0])
        brand_id = customer.brand_id
        Customer.objects.filter(pk=customer.pk).delete()
        brand_touch(brand_id=brand_id)


def activities_clean(activities: Iterable[Mapping[str, Any]]) -> list[Activity]:
    cleaned: list[Activity] = []
    errors: dict[str, list[str]] = {}
    for index, item in enumerate(activities):
        try:
            cleaned.append(_activity_build(dict(item)))
        except ValidationError as exc:
            for key, messages in exc.message_dict.items():
                errors[f"activities[{index}].{key}"] = messages
    if errors:
        raise ValidationError(errors)
    return cleaned


def _activity_build(item: dict[str, Any]) -> Activity:
    kind = str(item.pop("kind", item.pop("type", ""))).upper()
    if kind not in _ACTIVITY_KINDS:
        raise ValidationError({"kind": [f"{kind!r} is not one of {', '.join(ActivityKind.values)}."]})
    occurred_at = item.pop("occurred_at", None) or timezone.now()
    unknown = set(item) - set(ACTIVITY_FIELDS)
    if unknown:
        raise ValidationError({name: ["Unknown activity field."] for name in sorted(unknown)})
    activity = Activity(kind=kind, occurred_at=occurred_at, **item)
    try:
        activity.full_clean(exclude=["customer"], validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        raise ValidationError(exc.message_dict) from exc
    return activity


def activity_record(
    *, customer: Customer, kind: str, occurred_at: datetime | None = None, **fields: Any
) -> tuple[Activity, bool]:
    """Put an entry on the timeline; an entry with the same (source, external id) is kept once.

    Returns (activity, created). The next lookup shows it.
    """
    activity = _activity_build({"kind": kind, "occurred_at": occurred_at, **fields})
    with transaction.atomic():
        if activity.external_id:
            existing = Activity.objects.filter(
                customer=customer, source=activity.source, external_id=activity.external_id
            ).first()
            if existing:
                return existing, False
        activity.customer = customer
        activity.save()
        Customer.objects.filter(pk=customer.pk).update(last_contact_at=activity.occurred_at)
        customers_refresh(customer_ids=[customer.pk])
    return activity, True
