"""Writes for inbound events: the one accept path, store raw first, then interpret.

Architecture, "Inbound event": authenticate -> size and content-type checks ->
parse JSON -> **store the raw event in its own short transaction** -> the
source's registered interpreter (hooks.inbound.registry) reads the stored event
-> match the customer by phone or id -> timeline Activity -> ``emit(brand,
event_type, ...)``. Nothing about field content is checked before the event is
stored: odd values, missing fields, deep nesting or impossible dates are the
interpreter's business, and its verdict is a state on the stored event
(``invalid`` / ``failed`` with the reason, ``unmatched``), never a refusal.

Storing and interpreting are two transactions on purpose: when interpreting
fails (a bug, a database hiccup, a subscriber that raises) the event is already
committed, marked with the reason, and :func:`inbound_event_process` can run
again (admin action "Reprocess", or the platform retrying the post).

Retries never create duplicates: each event has an idempotency key (the
interpreter's ``identify``, else the content hash), unique per brand.

This module never imports an adapter: adapters register with
hooks.inbound.registry (see hooks.inbound.apps).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from datetime import UTC, datetime
from typing import Any

import orjson
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from customers import documents
from customers.matching import customer_for_phone, phone_policy
from customers.models import Address, Customer, CustomField
from customers.normalize import InvalidAddress, normalize_phone
from customers.selectors import customer_find_by_address, customer_find_by_id
from customers.services import activity_record, customer_create
from hub.events import emit
from hub.exceptions import InvalidJson
from hub.models import Brand
from hub.redaction import redact_headers

from .models import EventState, InboundEvent
from .registry import Interpretation, Unreadable, interpreter_for

logger = logging.getLogger(__name__)

ERROR_LIMIT = 4000
KEY_LIMIT = 200
# Deeper values are kept in the body only: Python's json (Django's JSONField,
# psycopg) recurses once per level, and nothing the hub reads is this deep.
MAX_PAYLOAD_DEPTH = 100
REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


# ---------------------------------------------------------------- the body as received


def inbound_body_parse(body: bytes) -> tuple[Any, bool]:
    """The JSON value of a request body and whether it was read exactly.

    orjson reads nearly every body. What it refuses but RFC 8259 allows (numbers
    beyond a double, such as 1e400; lone UTF-16 surrogates) is read again with
    Python's json, inexactly (the body keeps the original). Raises InvalidJson
    for a body that is not JSON, or is nested deeper than 1,024 levels (RFC 8259
    lets a parser limit nesting; the hub's limit is orjson's).
    """
    try:
        return orjson.loads(body), True
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc) or "recursion" in str(exc):
            raise InvalidJson("The body is nested deeper than 1,024 levels.") from exc
        error = exc
    try:
        # JSON on the wire is UTF-8 (RFC 8259): no UTF-16, no BOM, no encoded surrogates.
        return json.loads(body.decode("utf-8"), parse_constant=_not_json, parse_int=_json_int), False
    except (ValueError, RecursionError):
        raise InvalidJson(f"The body is not valid JSON: {error}.") from error


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_int(text: str) -> int | float:
    # Python refuses to read integers of more than 4,300 digits; orjson reads
    # those beyond 64 bits as floats. Do the same.
    return int(text) if len(text) <= 18 else float(text)


def payload_storable(value: Any, *, depth: int = 0) -> Any:
    """*value* in a form every database stores as JSON: NUL (PostgreSQL cannot
    store U+0000) and lone surrogates become U+FFFD, non-finite numbers the
    strings "Infinity" / "-Infinity", and values nested deeper than
    MAX_PAYLOAD_DEPTH a note. The raw body keeps the original."""
    if isinstance(value, str):
        return _storable_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, (dict, list)) and depth >= MAX_PAYLOAD_DEPTH:
        return f"(nested deeper than {MAX_PAYLOAD_DEPTH} levels: see the body as received)"
    if isinstance(value, dict):
        return {_storable_text(key): payload_storable(item, depth=depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [payload_storable(item, depth=depth + 1) for item in value]
    return value


def _storable_text(text: str) -> str:
    if text.isascii() and "\x00" not in text:
        return text
    return _UNSTORABLE.sub(REPLACEMENT, text)


def content_hash(payload: Any, body: bytes = b"") -> str:
    """SHA-256 of the payload with its keys sorted (a retry with its keys in
    another order is the same content), or of the body's bytes when the payload
    cannot be written canonically (nested deeper than orjson writes, 254 levels)."""
    try:
        return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()
    except (orjson.JSONEncodeError, TypeError):
        return hashlib.sha256(body).hexdigest()


# ---------------------------------------------------------------- interpretation helpers


def format_duration(seconds: float | int | None) -> str:
    """'2 min 14 s', '45 s', '1 h 3 min' — how the timeline says how long something took."""
    if seconds is None or not math.isfinite(seconds):
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
    """ISO 8601 in UTC ('Z'); a time UTC cannot hold (year 1 with a positive
    offset, year 9999 with a negative one) as written."""
    if value is None:
        return ""
    try:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    except OverflowError:
        return value.isoformat()


# ---------------------------------------------------------------- storing


def inbound_event_store(
    *, brand: Brand, source: str, body: bytes, payload: Any, exact: bool = True, headers: dict | None = None
) -> tuple[InboundEvent, bool]:
    """Commit the event as received, in its own short transaction, before
    anything reads its fields. Returns (event, created).

    *payload* is the parsed body (``exact`` False when it was not read exactly,
    see :func:`inbound_body_parse`). A post whose idempotency key, or whose
    content, is already stored for the brand and source returns the stored
    event (created False).
    """
    stored = payload_storable(payload)
    digest = content_hash(payload, body) if exact else hashlib.sha256(body).hexdigest()
    key = _idempotency_key(source, stored, digest)
    existing = (
        InboundEvent.objects.filter(brand=brand)
        .filter(Q(idempotency_key=key) | Q(source=source, content_hash=digest))
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
                event_type=interpreter_for(source).event_type,
                idempotency_key=key,
                content_hash=digest,
                # Valid JSON is UTF-8 without a raw NUL byte (control characters are escaped).
                body=body.decode("utf-8"),
                headers=_storable_headers(headers or {}),
                payload=stored,
                received_at=timezone.now(),
            )
    except IntegrityError:  # the same event arrived twice at once
        return InboundEvent.objects.get(brand=brand, idempotency_key=key), False
    return event, True


def _idempotency_key(source: str, payload: Any, digest: str) -> str:
    """The interpreter's identity of the event, else its content hash. Never
    fails: an identify() that raises costs the event its identity, not its storage."""
    try:
        identity = interpreter_for(source).identify(payload)
    except Exception:  # noqa: BLE001 - storage must not depend on reading fields
        logger.exception("identify() of %s failed; the content hash is the key", source)
        identity = ""
    identity = _storable_text(str(identity or ""))
    if not identity:
        return f"{source}:sha256:{digest}"
    if len(identity) > KEY_LIMIT:
        # A very long identity is hashed rather than cut, so two never share a key.
        return f"{source}:keysha256:{hashlib.sha256(identity.encode()).hexdigest()}"
    return identity


def _storable_headers(headers: dict) -> dict[str, str]:
    return {_storable_text(str(name)): _storable_text(value) for name, value in redact_headers(headers).items()}


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
            # The brand's matching policy, as the lookups apply it (customers.matching).
            found = customer_for_phone(brand=brand, value=value)
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
    if phone_policy(brand).is_own_line(normalized):
        return None  # the brand's own line is nobody's number
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
    """Interpret, match, put on the timeline and emit, in one transaction.
    Never raises: unreadable fields leave the event ``invalid``, any other
    failure ``failed``, each with the reason; nothing is half done."""
    try:
        with transaction.atomic():
            return _process_locked(event.pk)
    except Unreadable as exc:
        _mark(event.pk, EventState.INVALID, f"Fields that could not be read: {exc}")
    except Exception as exc:  # noqa: BLE001 - the event stays stored; the error is recorded on it
        logger.exception("Processing inbound event %s failed", event.pk)
        _mark(event.pk, EventState.FAILED, f"{type(exc).__name__}: {exc}")
    return InboundEvent.objects.get(pk=event.pk)


def _mark(pk: int, state: str, reason: str) -> None:
    InboundEvent.objects.filter(pk=pk).update(
        state=state, error=_storable_text(reason)[:ERROR_LIMIT], attempts=F("attempts") + 1
    )


NO_CUSTOMER_NAMED = "The event names no customer to match (no phone number, e-mail or customer id)."


def _process_locked(pk: int) -> InboundEvent:
    event = InboundEvent.objects.select_for_update().select_related("brand").get(pk=pk)
    if event.state == EventState.PROCESSED:
        return event
    brand = event.brand
    meaning = interpreter_for(event.source).interpret(event.payload)
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
    contact = next((value for _, value in meaning.lookups if value), "")
    event.summary = meaning.summary[:300]
    event.contact_number = contact[:100]
    event.state = EventState.PROCESSED if customer is not None else EventState.UNMATCHED
    event.error = "" if customer is not None or contact else NO_CUSTOMER_NAMED
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
    they are now: what a dispatcher rule preview evaluates. Raises Unreadable
    (a ValueError) for an event whose fields cannot be read."""
    meaning = interpreter_for(event.source).interpret(event.payload)
    snapshot = None
    if event.customer_id and Customer.objects.filter(pk=event.customer_id).exists():
        snapshot = documents.snapshot(_customer_data(event.customer_id))
    return _event_data(event, meaning, snapshot)


# States a retry of the same post interprets again (the platform's retry heals them).
RETRY_INTERPRETS = frozenset({EventState.RECEIVED, EventState.FAILED})


def inbound_event_accept(
    *, brand: Brand, source: str, body: bytes, headers: dict | None = None
) -> tuple[InboundEvent, bool]:
    """The one accept path: parse (InvalidJson, a 400, for a body that is not
    JSON), store raw, then interpret. Returns (event, duplicate).

    A retry of an event that is stored but not interpreted (received, failed)
    is interpreted again; a retry of one that was changes nothing.
    """
    payload, exact = inbound_body_parse(body)
    event, created = inbound_event_store(
        brand=brand, source=source, body=body, payload=payload, exact=exact, headers=headers
    )
    if created or event.state in RETRY_INTERPRETS:
        event = inbound_event_process(event=event)
    return event, not created


def inbound_events_reprocess(*, events) -> dict[str, int]:
    """Admin action: interpret again every selected event that has not reached
    a customer (received, invalid, failed, unmatched — e.g. after the customer
    was added). The hub event is never emitted twice for one inbound event."""
    counts: dict[str, int] = {}
    for event in events:
        if event.state == EventState.PROCESSED:
            counts["skipped"] = counts.get("skipped", 0) + 1
            continue
        done = inbound_event_process(event=event)
        counts[done.state] = counts.get(done.state, 0) + 1
    return counts
