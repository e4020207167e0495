"""Writes for inbound events: store raw first, then process.

Architecture, "Inbound event": authenticate -> validate -> store the raw event
(nothing is lost, even when no customer matches) -> match the customer by phone
or id -> timeline Activity -> ``emit(brand, event_type, ...)``. Retries from the
platform never create duplicates: each event has an idempotency key from its
payload, unique per brand, and a content hash.

Storing and processing are two transactions on purpose: when processing fails
(a bug, a database hiccup, a subscriber that raises) the event is already
committed, marked ``failed`` with the error, and :func:`inbound_event_process`
can be run again (admin action "Reprocess", or the platform retrying the post).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from customers import documents
from customers.models import Address, Customer, CustomField
from customers.normalize import InvalidAddress, normalize_phone
from customers.selectors import customer_find_by_address, customer_find_by_id
from customers.services import activity_record, customer_create
from hub.events import emit
from hub.models import Brand

from .models import EventSource, EventState, InboundEvent

logger = logging.getLogger(__name__)

ERROR_LIMIT = 4000


# ---------------------------------------------------------------- reading a request body


class BodyError(Exception):
    """A request body the endpoint cannot accept: status, code, message, field errors."""

    def __init__(self, status: int, code: str, message: str, fields: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or {}


def json_body_read(request) -> tuple[Any, bytes]:
    """The request's JSON body: 413 when over HUB_MAX_BODY_BYTES, 415 when not
    JSON, 400 when it does not parse. Returns (parsed, raw bytes)."""
    limit = settings.HUB_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    too_big = BodyError(413, "too_large", f"The request body is larger than {limit} bytes.")
    if declared > limit:
        raise too_big
    content_type = request.META.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        # WSGI servers report a missing Content-Type as text/plain.
        got = "none" if content_type in ("", "text/plain") else repr(content_type)
        raise BodyError(
            415,
            "unsupported_media_type",
            f"Send the event as JSON with Content-Type: application/json (Content-Type received: {got}).",
        )
    try:
        raw = request.body
    except RequestDataTooBig:
        raise too_big
    if len(raw) > limit:
        raise too_big
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BodyError(400, "invalid_json", f"The body is not valid JSON: {exc}.")
    if _has_nul(parsed):
        # PostgreSQL cannot store U+0000 in text or JSON; refuse it on every database alike.
        raise BodyError(400, "invalid_json", "Text in the body may not contain NUL (\\u0000) characters.")
    return parsed, raw


def _has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


# ---------------------------------------------------------------- what an event means


@dataclass
class Interpretation:
    """What a stored payload means for the hub (built by the contract's adapter module)."""

    event_type: str
    summary: str
    event: dict[str, Any]
    call: dict[str, Any] | None = None
    # Where to look for the customer, in order: ("phone" | "customer_id" | "email", value).
    lookups: list[tuple[str, str]] = field(default_factory=list)
    # M8Com: the CRM-side number a customer is created for when the brand asks for it.
    create_number: str = ""
    # customers.services.activity_record arguments (kind, occurred_at, fields).
    activity: dict[str, Any] = field(default_factory=dict)


def _interpreter(source: str) -> Callable[[dict[str, Any]], Interpretation]:
    # The translation of each contract lives in its adapter module.
    if source == EventSource.M8COM_CALLLOG:
        from . import calllog

        return calllog.calllog_interpret
    from . import servicehooks

    return lambda payload: servicehooks.servicehook_interpret(source, payload)


def content_hash(payload: Any) -> str:
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


def format_duration(seconds: float | int | None) -> str:
    """'2 min 14 s', '45 s', '1 h 3 min' — how the timeline says how long something took."""
    if seconds is None:
        return ""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(f"{hours} h")
    if minutes:
        parts.append(f"{minutes} min")
    if secs or not parts:
        parts.append(f"{secs} s")
    return " ".join(parts)


def millis_to_datetime(value: float | int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def iso(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------- storing


def inbound_event_store(
    *, brand: Brand, source: str, payload: Any, idempotency_key: str, payload_hash: str | None = None
) -> tuple[InboundEvent, bool]:
    """Commit the event as received, before any processing. Returns (event, created).

    A post whose idempotency key, or whose content, is already stored for the
    brand and source returns the stored event (created False).
    """
    digest = payload_hash or content_hash(payload)
    existing = (
        InboundEvent.objects.filter(brand=brand)
        .filter(Q(idempotency_key=idempotency_key) | Q(source=source, content_hash=digest))
        .order_by("pk")
        .first()
    )
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            event = InboundEvent.objects.create(
                brand=brand,
                source=source,
                event_type=_event_type_of(source),
                idempotency_key=idempotency_key[:200],
                content_hash=digest,
                payload=payload,
                received_at=timezone.now(),
            )
    except IntegrityError:  # the same event arrived twice at once
        return InboundEvent.objects.get(brand=brand, idempotency_key=idempotency_key[:200]), False
    return event, True


EVENT_TYPE_OF_SOURCE = {
    EventSource.M8COM_CALLLOG: "call.logged",
    EventSource.ABANDONED_CONVERSATION: "conversation.abandoned",
    EventSource.OUTBOUND_CALL: "call.outbound",
    EventSource.WORKITEM_CLOSED: "workitem.closed",
}


def _event_type_of(source: str) -> str:
    return EVENT_TYPE_OF_SOURCE[EventSource(source)]


# ---------------------------------------------------------------- processing


def _customer_match(brand: Brand, lookups: list[tuple[str, str]]) -> Customer | None:
    for kind, value in lookups:
        if not value:
            continue
        if kind == "customer_id":
            found = customer_find_by_id(brand=brand, customer_id=value)
        elif kind == "email":
            found = customer_find_by_address(brand=brand, kind="email", value=value).order_by("pk").first()
        else:
            found = customer_find_by_address(brand=brand, kind="telephone", value=value).order_by("pk").first()
        if found is not None:
            return found
    return None


def _unknown_caller_create(brand: Brand, number: str) -> Customer | None:
    """Brand setting 'create customers for unknown callers': only for a real
    phone number (M8Com sends an id instead for users without one)."""
    try:
        normalized = normalize_phone(number, brand.default_region, strict=True)
    except InvalidAddress:
        return None
    return customer_create(
        brand=brand,
        display_name=f"Unknown caller {normalized}",
        addresses=[{"kind": "telephone", "value": normalized, "comment": "Caller"}],
    )


def _customer_data(pk: int, customer: Customer | None = None) -> documents.CustomerData:
    """What the event snapshot needs (customer, addresses, custom fields) in
    plain queries: the timeline is not part of a snapshot, and
    ``documents.load`` would rank every activity again."""
    return documents.CustomerData(
        customer or Customer.objects.select_related("brand").get(pk=pk),
        list(Address.objects.filter(customer_id=pk).order_by("position", "pk")),
        list(CustomField.objects.filter(customer_id=pk).order_by("position", "pk")),
    )


def inbound_event_process(*, event: InboundEvent) -> InboundEvent:
    """Match, put on the timeline and emit, in one transaction. Never raises:
    a failure leaves the event stored as ``failed`` with the error."""
    try:
        with transaction.atomic():
            return _process_locked(event.pk)
    except Exception as exc:  # noqa: BLE001 - the event stays stored; the error is recorded on it
        logger.exception("Processing inbound event %s failed", event.pk)
        message = f"{type(exc).__name__}: {exc}"[:ERROR_LIMIT]
        InboundEvent.objects.filter(pk=event.pk).update(
            state=EventState.FAILED, error=message, attempts=F("attempts") + 1
        )
        return InboundEvent.objects.get(pk=event.pk)


def _process_locked(pk: int) -> InboundEvent:
    event = InboundEvent.objects.select_for_update().select_related("brand").get(pk=pk)
    if event.state == EventState.PROCESSED:
        return event
    brand = event.brand
    meaning = _interpreter(event.source)(event.payload)
    customer = _customer_match(brand, meaning.lookups)
    if customer is None and meaning.create_number and brand.create_unknown_callers:
        customer = _unknown_caller_create(brand, meaning.create_number)
        event.customer_created = customer is not None
    snapshot = None
    if customer is not None:
        activity, created = activity_record(customer=customer, **meaning.activity)
        if created:  # activity_record moved it, with a queryset update
            customer.last_contact_at = activity.occurred_at
        customer.brand = brand
        data = _customer_data(customer.pk, customer)
        snapshot = documents.snapshot(data)
        event.activity = activity
        event.customer = customer
        event.customer_repr = f"{documents.display_name(data.customer)} ({data.customer.customer_id})"[:300]
    if not event.emitted:
        payload = _event_data(event, meaning, snapshot)
        emit(
            brand_id=brand.pk,
            event_type=meaning.event_type,
            data=payload,
            customer_id=customer.pk if customer else None,
        )
        event.emitted = True
    event.summary = meaning.summary[:300]
    event.contact_number = next((value for _, value in meaning.lookups if value), "")[:100]
    event.state = EventState.PROCESSED if customer is not None else EventState.UNMATCHED
    event.error = ""
    event.attempts += 1
    event.processed_at = timezone.now()
    event.save()
    return event


def _event_data(event: InboundEvent, meaning: Interpretation, snapshot: dict[str, Any] | None) -> dict[str, Any]:
    """The hub event's data: ``event`` (the payload's fields plus canonical
    ones), ``customer`` (snapshot or None), ``call`` for call events, and the
    raw ``payload``."""
    data: dict[str, Any] = {
        "event": {
            **meaning.event,
            "inbound_event_id": event.pk,
            "type": meaning.event_type,
            "source": event.source,
            "summary": meaning.summary,
            "received_at": iso(event.received_at),
        },
        "customer": snapshot,
        "payload": event.payload,
    }
    if meaning.call is not None:
        data["call"] = meaning.call
    return data


def inbound_event_data(*, event: InboundEvent) -> dict[str, Any]:
    """The data a stored event is (or would be) emitted with, the customer as
    they are now: what a dispatcher rule preview evaluates."""
    meaning = _interpreter(event.source)(event.payload)
    snapshot = None
    if event.customer_id and Customer.objects.filter(pk=event.customer_id).exists():
        snapshot = documents.snapshot(_customer_data(event.customer_id))
    return _event_data(event, meaning, snapshot)


def inbound_event_accept(*, brand: Brand, source: str, payload: Any, idempotency_key: str) -> tuple[InboundEvent, bool]:
    """Store, then process. Returns (event, duplicate).

    A retry of an event whose processing failed is processed again; a retry of
    one that was processed changes nothing.
    """
    event, created = inbound_event_store(brand=brand, source=source, payload=payload, idempotency_key=idempotency_key)
    if created or event.state in (EventState.RECEIVED, EventState.FAILED):
        event = inbound_event_process(event=event)
    return event, not created


@functools.cache
def openapi_error(name: str):
    """The hub's error body, ``{"error": {"code", "message", "fields"}}``, for the schema."""
    from drf_spectacular.utils import inline_serializer
    from rest_framework import serializers

    return inline_serializer(
        name,
        {
            "error": inline_serializer(
                f"{name}Detail",
                {
                    "code": serializers.CharField(),
                    "message": serializers.CharField(),
                    "fields": serializers.DictField(
                        child=serializers.ListField(child=serializers.CharField()), required=False
                    ),
                },
            )
        },
    )


@functools.cache
def openapi_event_accepted():
    from drf_spectacular.utils import inline_serializer
    from rest_framework import serializers

    return inline_serializer(
        "InboundEventAccepted",
        {
            "id": serializers.IntegerField(help_text="The stored event (admin: Inbound events)."),
            "status": serializers.ChoiceField(["processed", "unmatched", "failed"]),
            "duplicate": serializers.BooleanField(help_text="A retry of an event already stored: nothing new."),
            "customerID": serializers.CharField(allow_null=True, help_text="The matched customer's ID, or null."),
        },
    )


def event_response_body(event: InboundEvent, duplicate: bool) -> tuple[dict[str, Any], int]:
    """What an inbound endpoint answers: 200 once the event is stored and
    processed (matched or not), 202 when it is stored but processing failed
    (it is kept and can be reprocessed; nothing is lost)."""
    body = {
        "id": event.pk,
        "status": event.state,
        "duplicate": duplicate,
        "customerID": event.customer.customer_id if event.customer_id and event.customer else None,
    }
    return body, 202 if event.state == EventState.FAILED else 200


def inbound_events_reprocess(*, events) -> dict[str, int]:
    """Admin action: process again every selected event that has not reached a
    customer (failed, received, unmatched — e.g. after the customer was added).
    The hub event is never emitted twice for one inbound event."""
    counts: dict[str, int] = {}
    for event in events:
        if event.state == EventState.PROCESSED:
            counts["skipped"] = counts.get("skipped", 0) + 1
            continue
        done = inbound_event_process(event=event)
        counts[done.state] = counts.get(done.state, 0) + 1
    return counts
