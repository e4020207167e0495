"""The finished lookup answers stored on each customer, and the event snapshot.

Lookups are the hot path (M8Com gives up after 3 seconds, and is called on
every incoming call, dialer search and call-log display), so the services
rebuild a customer's Omnidesk element and M8Com contact in the same
transaction as every change; a lookup then reads one indexed row and writes
the stored JSON as is. Everything here works on plain data fetched in bulk by
:func:`load`, so one refresh of N customers costs four queries.
"""

from __future__ import annotations

import json
import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import F, Window
from django.db.models.functions import RowNumber

from .matching import phone_policy
from .models import Activity, Address, AddressKind, Customer, CustomField
from .normalize import PHONE_KINDS

# M8Com: "A list of up to 10 activities per type", newest first.
M8COM_ACTIVITIES_PER_TYPE = 10
M8COM_ACTIVITY_KINDS = ("NOTE", "TASK", "CALL", "TICKET", "DEAL", "APPOINTMENT")
# Omnidesk's contract gives no limit; the newest 20 entries of every kind.
OMNIDESK_TIMELINE_LIMIT = 20
FETCH_PER_KIND = max(M8COM_ACTIVITIES_PER_TYPE, OMNIDESK_TIMELINE_LIMIT)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def millis(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


def iso(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(zoneinfo.ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class CustomerData:
    customer: Customer
    addresses: list[Address] = field(default_factory=list)
    custom_fields: list[CustomField] = field(default_factory=list)
    activities: list[Activity] = field(default_factory=list)  # newest first, FETCH_PER_KIND per kind


def load(customer_ids: list[int]) -> list[CustomerData]:
    """Customers with their addresses, fields and newest activities: four queries."""
    if not customer_ids:
        return []
    # order_by(): the model's ordering (brand name, last name, ...) would make SQLite walk
    # the brand's whole name index instead of looking the ids up; the caller's order is kept below.
    customers = {
        c.pk: CustomerData(c) for c in Customer.objects.filter(pk__in=customer_ids).select_related("brand").order_by()
    }
    for address in Address.objects.filter(customer_id__in=customer_ids).order_by("customer_id", "position", "pk"):
        customers[address.customer_id].addresses.append(address)
    for custom_field in CustomField.objects.filter(customer_id__in=customer_ids).order_by(
        "customer_id", "position", "pk"
    ):
        customers[custom_field.customer_id].custom_fields.append(custom_field)
    newest = (
        Activity.objects.filter(customer_id__in=customer_ids)
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("customer_id"), F("kind")],
                order_by=[F("occurred_at").desc(), F("pk").desc()],
            )
        )
        .filter(rank__lte=FETCH_PER_KIND)
        .order_by("customer_id", "-occurred_at", "-pk")
    )
    for activity in newest:
        customers[activity.customer_id].activities.append(activity)
    return [customers[pk] for pk in customer_ids if pk in customers]


def organizations(customer: Customer) -> str:
    """Deskpro ``person.organizations``: "A comma separated list of the organizations
    the user belongs to", their names. A hub customer belongs to at most one
    organization, its company (``company_name``), so the list is that name, or
    empty. The name is written as stored (a comma inside it is kept); the body
    format's escaping applies as for every token."""
    names = [name for name in (customer.company_name.strip(),) if name]
    return ", ".join(names)


def display_name(customer: Customer) -> str:
    return customer.name or customer.company_name or customer.customer_id


# ---------------------------------------------------------------- Omnidesk


def omnidesk_element(data: CustomerData, tz: zoneinfo.ZoneInfo) -> dict[str, Any]:
    """Omnidesk lookup: one element of the response array, keys as the contract's example."""
    customer = data.customer
    return {
        "addresses": [
            {"address": a.normalized if a.kind in PHONE_KINDS else a.value.strip(), "type": a.kind}
            for a in data.addresses
        ],
        "customerFirstname": customer.first_name,
        "customerID": customer.customer_id,
        "customerLastname": customer.last_name,
        "customFields": [{f.key: f.value} for f in data.custom_fields],
        "timeline": [
            {
                "externalID": a.external_id or str(a.pk),
                "lastUpdate": a.occurred_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"),
                "type": a.kind.lower(),
                "message": ": ".join(part for part in (a.header, a.body) if part),
                "source": a.source,
                "url": a.link_url,
            }
            for a in data.activities[:OMNIDESK_TIMELINE_LIMIT]
        ],
    }


# ---------------------------------------------------------------- M8Com

# Per type, the optional fields the M8Com contract lists, as (json key, attribute).
_COMMON_TAIL = (("link", "link_url"),)
_M8COM_OPTIONAL: dict[str, tuple[tuple[str, str], ...]] = {
    "NOTE": (("header", "header"), ("customHeader", "custom_header"), ("associatedUser", "associated_user")),
    "TASK": (
        ("header", "header"),
        ("customHeader", "custom_header"),
        ("customDescription", "custom_description"),
        ("status", "status"),
        ("done", "done"),
        ("assignedUser", "assigned_user"),
    ),
    "CALL": (("customHeader", "custom_header"), ("customDescription", "custom_description")),
    "TICKET": (
        ("priority", "priority"),
        ("header", "header"),
        ("customHeader", "custom_header"),
        ("customDescription", "custom_description"),
        ("pipeline", "pipeline"),
        ("pipelineStage", "pipeline_stage"),
    ),
    "DEAL": (
        ("currency", "currency"),
        ("amount", "amount"),
        ("done", "done"),
        ("header", "header"),
        ("customHeader", "custom_header"),
        ("customDescription", "custom_description"),
        ("pipeline", "pipeline"),
        ("pipelineStage", "pipeline_stage"),
    ),
    "APPOINTMENT": (
        ("allDay", "all_day"),
        ("venue", "venue"),
        ("header", "header"),
        ("customDescription", "custom_description"),
        ("status", "status"),
    ),
}


def m8com_activity(a: Activity) -> dict[str, Any]:
    """M8Com: exactly the contract's fields for the type; optional ones omitted when empty."""
    stamp = millis(a.occurred_at)
    item: dict[str, Any] = {"type": a.kind, "body": a.body, "timestamp": stamp}
    if a.kind == "TASK":
        item["dueDate"] = millis(a.due_date) or stamp
    elif a.kind == "CALL":
        item["toNumber"] = a.to_number
        item["fromNumber"] = a.from_number
        item["duration"] = a.duration_ms or 0
        item["startTime"] = millis(a.start_time) or stamp
    elif a.kind == "TICKET":
        item["createdDate"] = millis(a.created_date) or stamp
    elif a.kind == "DEAL":
        item["closeDate"] = millis(a.close_date) or stamp
    elif a.kind == "APPOINTMENT":
        item["startDate"] = millis(a.start_date) or stamp
        item["endDate"] = millis(a.end_date) or millis(a.start_date) or stamp
    for key, attribute in (*_M8COM_OPTIONAL[a.kind], *_COMMON_TAIL):
        value = getattr(a, attribute)
        if value is None or value == "":
            continue
        item[key] = value
    if a.markdown:
        item["markdown"] = True
    return item


def _entry(value: str, comment: str) -> dict[str, str]:
    """M8Com's Email / PhoneNumber object: ``id`` and the optional ``comment``."""
    return {"id": value, "comment": comment} if comment else {"id": value}


def m8com_phone_numbers(data: CustomerData) -> list[dict[str, str]]:
    """The card's ``phoneNumbers``: the customer's numbers of every address type the
    brand's matching policy counts as a phone (customers.matching: the types a lookup
    finds the caller by, e.g. WhatsApp), in stored order, each number once (E.164).
    A number of another type than ``telephone`` without a comment of its own is
    labelled with its type ("WhatsApp"), so the agent sees which channel it is.
    Depends on the brand's policy: a change of its phone types rebuilds the stored
    contacts (customers.services.on_brand_phone_address_types_changed)."""
    kinds = phone_policy(data.customer.brand).kinds
    seen: set[str] = set()
    phones = []
    for a in data.addresses:
        if a.kind not in kinds or a.normalized in seen:
            continue
        seen.add(a.normalized)
        label = "" if a.kind == AddressKind.TELEPHONE else AddressKind(a.kind).label
        phones.append(_entry(a.normalized, a.comment or label))
    return phones


def m8com_contact(data: CustomerData) -> dict[str, Any]:
    """M8Com number lookup response, without the brand-templated links
    (moreInfoUrl fallback, createActivityUrls), which are added per request."""
    customer = data.customer
    contact: dict[str, Any] = {"displayName": display_name(customer)}
    optional = {
        "firstName": customer.first_name,
        "lastName": customer.last_name,
        "avatarUrl": customer.avatar_url,
        "coverPhotoUrl": customer.cover_photo_url,
    }
    contact.update({key: value for key, value in optional.items() if value})

    if emails := [_entry(a.value.strip(), a.comment) for a in data.addresses if a.kind == "email"]:
        contact["emails"] = emails
    if phones := m8com_phone_numbers(data):
        contact["phoneNumbers"] = phones
    company = {key: value for key, value in (("name", customer.company_name), ("title", customer.job_title)) if value}
    if company:
        contact["companyInfo"] = company
    if data.custom_fields:
        # The contract's Field object has two required strings, title and comment.
        contact["fields"] = [{"title": f.key, "comment": f.value} for f in data.custom_fields]
    if customer.more_info_url:
        contact["moreInfoUrl"] = customer.more_info_url
    counts: dict[str, int] = {}
    activities = []
    for a in data.activities:  # already newest first
        if a.kind not in M8COM_ACTIVITY_KINDS or counts.get(a.kind, 0) >= M8COM_ACTIVITIES_PER_TYPE:
            continue
        counts[a.kind] = counts.get(a.kind, 0) + 1
        activities.append(m8com_activity(a))
    if activities:
        contact["activities"] = activities
    return contact


# ---------------------------------------------------------------- snapshot


def snapshot(data: CustomerData) -> dict[str, Any]:
    """The customer as plain data: event payloads and outbound template tokens."""
    customer = data.customer
    contact: dict[str, str] = {}
    emails, phones = [], []
    for a in data.addresses:
        shown = a.normalized if a.kind in PHONE_KINDS else a.value.strip()
        contact.setdefault(a.kind, shown)
        if a.kind == "email":
            emails.append(shown)
        elif a.kind == "telephone":
            phones.append(shown)
    return {
        "id": customer.pk,
        "customer_id": customer.customer_id,
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "name": " ".join(part for part in (customer.first_name, customer.last_name) if part) or display_name(customer),
        "display_name": display_name(customer),
        "email": emails[0] if emails else "",
        "emails": emails,
        "phone": phones[0] if phones else "",
        "phones": phones,
        "contact": contact,
        "organizations": organizations(customer),
        "company": customer.company_name,
        "job_title": customer.job_title,
        "summary": customer.summary,
        "timezone": customer.time_zone or customer.brand.time_zone,
        "avatar_url": customer.avatar_url,
        "more_info_url": customer.more_info_url,
        "custom_fields": {f.key: f.value for f in data.custom_fields},
        # Customers never log in to the hub: Deskpro's last login is filled with the
        # closest fact the hub has, the time of the last activity a platform reported.
        "last_logged_in": iso(customer.last_contact_at),
        "created_at": iso(customer.created_at),
        "updated_at": iso(customer.updated_at),
    }


def render(data: CustomerData) -> tuple[str, str]:
    tz = zoneinfo.ZoneInfo(data.customer.brand.time_zone)
    return dumps(omnidesk_element(data, tz)), dumps(m8com_contact(data))
