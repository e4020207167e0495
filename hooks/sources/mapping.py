"""Reading a source's JSON answer with its mapping (JSONPath, python-jsonpath).

``record_read`` turns the answer into a *record*: plain JSON data with Hookhub's
customer fields (cached as is). ``customer_input`` turns a record into the
arguments of customers.services.customer_create, and ``customer_data`` into an
unsaved customer (customers.documents.CustomerData) from which the platform
answers are built by the same code as a stored customer's: an upstream match
has exactly the contracts' shapes.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import jsonpath
from django.core.exceptions import ValidationError

from customers import services as customer_services
from customers.documents import CustomerData
from customers.models import Customer

# Mapping keys read as one text (the first value found).
TEXT_FIELDS = {
    "customer_id": "customer_id",
    "first_name": "first_name",
    "last_name": "last_name",
    "company": "company_name",
    "job_title": "job_title",
}
LIST_FIELDS = ("email", "phone")  # every value found
MAPPING_KEYS = {"record", *TEXT_FIELDS, *LIST_FIELDS, "custom_fields", "activities"}
MAX_LIST = 10
MAX_ACTIVITIES = 50
MAX_TEXT = 1000

# Activity fields by the M8Com contract's names -> customers.Activity attributes.
ACTIVITY_ATTRIBUTES = {
    "body": "body",
    "timestamp": "occurred_at",
    "link": "link_url",
    "markdown": "markdown",
    "externalID": "external_id",
    "source": "source",
    "header": "header",
    "customHeader": "custom_header",
    "customDescription": "custom_description",
    "associatedUser": "associated_user",
    "assignedUser": "assigned_user",
    "status": "status",
    "done": "done",
    "dueDate": "due_date",
    "toNumber": "to_number",
    "fromNumber": "from_number",
    "duration": "duration_ms",
    "startTime": "start_time",
    "createdDate": "created_date",
    "priority": "priority",
    "pipeline": "pipeline",
    "pipelineStage": "pipeline_stage",
    "closeDate": "close_date",
    "currency": "currency",
    "amount": "amount",
    "startDate": "start_date",
    "endDate": "end_date",
    "allDay": "all_day",
    "venue": "venue",
}
COMMON_ACTIVITY_FIELDS = {"body", "timestamp", "link", "markdown", "externalID", "source"}
# M8Com: the type-specific fields of each activity type (EVENT: Omnidesk's timeline only).
TYPE_FIELDS = {
    "NOTE": {"header", "customHeader", "associatedUser"},
    "TASK": {"header", "customHeader", "customDescription", "status", "done", "assignedUser", "dueDate"},
    "CALL": {"customHeader", "customDescription", "toNumber", "fromNumber", "duration", "startTime"},
    "TICKET": {"priority", "header", "customHeader", "customDescription", "pipeline", "pipelineStage", "createdDate"},
    "DEAL": {
        "currency",
        "amount",
        "done",
        "header",
        "customHeader",
        "customDescription",
        "pipeline",
        "pipelineStage",
        "closeDate",
    },
    "APPOINTMENT": {"allDay", "venue", "header", "customDescription", "status", "startDate", "endDate"},
    "EVENT": {"header"},
}
DATE_FIELDS = {"timestamp", "dueDate", "startTime", "createdDate", "closeDate", "startDate", "endDate"}
BOOL_FIELDS = {"markdown", "done", "allDay"}


@functools.lru_cache(maxsize=1024)
def _compiled(path: str):
    return jsonpath.compile(path)


def path_problem(path: Any) -> str | None:
    if not isinstance(path, str) or not path.strip():
        return "must be a JSONPath such as $.firstName."
    try:
        _compiled(path.strip())
    except jsonpath.JSONPathError as exc:
        return f"not a JSONPath: {str(exc).splitlines()[0]}"
    return None


def mapping_errors(mapping: Any) -> list[str]:
    """Every problem of a mapping, each naming its place."""
    if not isinstance(mapping, dict):
        return ['The mapping must be a JSON object such as {"customer_id": "$.id"}.']
    errors = [
        f"{key}: unknown key (use {', '.join(sorted(MAPPING_KEYS))})." for key in sorted(set(mapping) - MAPPING_KEYS)
    ]
    if not mapping.get("customer_id"):
        errors.append("customer_id: required (Omnidesk's customerID; the id lookups ask by).")
    for key in ("record", *TEXT_FIELDS, *LIST_FIELDS):
        if key in mapping and (problem := path_problem(mapping[key])):
            errors.append(f"{key}: {problem}")
    fields = mapping.get("custom_fields", {})
    if not isinstance(fields, dict):
        errors.append('custom_fields: an object of {"field name": "JSONPath"}.')
    else:
        for name, path in fields.items():
            if not str(name).strip() or len(str(name)) > 100:
                errors.append("custom_fields: a field name of 1 to 100 characters is required.")
            elif problem := path_problem(path):
                errors.append(f"custom_fields.{name}: {problem}")
    activities = mapping.get("activities", [])
    if not isinstance(activities, list):
        errors.append('activities: a list of {"type": ..., "items": JSONPath, "fields": {...}}.')
        activities = []
    for index, spec in enumerate(activities):
        where = f"activities[{index}]"
        if not isinstance(spec, dict) or set(spec) - {"type", "items", "fields"}:
            errors.append(f'{where}: an object with "type", "items" and "fields".')
            continue
        kind = str(spec.get("type", "")).upper()
        if kind not in TYPE_FIELDS:
            errors.append(f"{where}.type: one of {', '.join(TYPE_FIELDS)}.")
            continue
        if problem := path_problem(spec.get("items")):
            errors.append(f"{where}.items: {problem}")
        fields_spec = spec.get("fields", {})
        if not isinstance(fields_spec, dict):
            errors.append(f"{where}.fields: an object of {{field: JSONPath}}.")
            continue
        allowed = COMMON_ACTIVITY_FIELDS | TYPE_FIELDS[kind]
        for name, path in fields_spec.items():
            if name not in allowed:
                errors.append(f"{where}.fields.{name}: not a {kind} field (use {', '.join(sorted(allowed))}).")
            elif problem := path_problem(path):
                errors.append(f"{where}.fields.{name}: {problem}")
    return errors


def _all(path: str, data: Any) -> list[Any]:
    try:
        return list(_compiled(path.strip()).findall(data))
    except Exception:  # noqa: BLE001 - an odd answer is a miss, never a failed lookup
        return []


def _flat(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        out.extend(value if isinstance(value, list) else [value])
    return out


def _text(value: Any) -> str:
    if value is None or isinstance(value, (dict, list)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()[:MAX_TEXT]


def _first_text(path: str | None, data: Any) -> str:
    if not path:
        return ""
    for value in _flat(_all(path, data)):
        if text := _text(value):
            return text
    return ""


def record_read(answer: Any, mapping: dict) -> dict | None:
    """The contact the answer holds, as plain data; None when it holds none."""
    found = _all(mapping.get("record") or "$", answer)
    candidate = found[0] if found else None
    if isinstance(candidate, list):
        candidate = candidate[0] if candidate else None
    if not isinstance(candidate, dict):
        return None
    record: dict[str, Any] = {name: _first_text(mapping.get(key), candidate) for key, name in TEXT_FIELDS.items()}
    if not record["customer_id"]:
        return None  # Omnidesk needs a customerID; a record without one is no match
    for key in LIST_FIELDS:
        texts = [_text(v) for v in _flat(_all(mapping[key], candidate))] if mapping.get(key) else []
        record[key] = list(dict.fromkeys(t for t in texts if t))[:MAX_LIST]
    record["custom_fields"] = [
        [str(name), text]
        for name, path in (mapping.get("custom_fields") or {}).items()
        if (text := _first_text(path, candidate))
    ]
    activities = []
    for spec in mapping.get("activities") or []:
        kind = str(spec["type"]).upper()
        for item in _flat(_all(spec["items"], candidate))[:MAX_ACTIVITIES]:
            if not isinstance(item, dict):
                continue
            values: dict[str, Any] = {"type": kind}
            for name, path in (spec.get("fields") or {}).items():
                found_values = _flat(_all(path, item))
                if found_values and found_values[0] is not None and not isinstance(found_values[0], (dict, list)):
                    values[name] = found_values[0]
            activities.append(values)
    record["activities"] = activities[:MAX_ACTIVITIES]
    return record


# ---------------------------------------------------------------- to a customer


def _when(value: Any) -> datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds = value / 1000 if abs(value) > 100_000_000_000 else value  # M8Com: milliseconds
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text.isdigit():
            return _when(int(text))
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _activity_input(values: dict, *, source_name: str, customer_id: str, index: int) -> dict[str, Any] | None:
    kind = values["type"]
    item: dict[str, Any] = {"kind": kind}
    for name, value in values.items():
        attribute = ACTIVITY_ATTRIBUTES.get(name)
        if attribute is None:
            continue
        if name in DATE_FIELDS:
            value = _when(value)
            if value is None:
                continue
        elif name in BOOL_FIELDS:
            value = value if isinstance(value, bool) else str(value).strip().lower() in ("true", "1", "yes")
        elif name == "amount":
            try:
                value = Decimal(str(value))
            except InvalidOperation:
                continue
        elif name == "duration":
            try:
                value = int(float(value))
            except (TypeError, ValueError):
                continue
        else:
            value = _text(value)
        item[attribute] = value
    if "occurred_at" not in item:
        return None  # the contracts' timestamp / lastUpdate is required
    item.setdefault("source", source_name[:100])
    item.setdefault("external_id", f"{customer_id}:{kind.lower()}:{index}")
    return item


def customer_input(record: dict, *, source_name: str) -> dict[str, Any]:
    """Keyword arguments of customers.services.customer_create for the record."""
    addresses = [{"kind": "email", "value": v} for v in record.get("email", [])]
    addresses += [{"kind": "telephone", "value": v} for v in record.get("phone", [])]
    activities = []
    for index, values in enumerate(record.get("activities", [])):
        item = _activity_input(values, source_name=source_name, customer_id=record["customer_id"], index=index)
        if item is not None:
            activities.append(item)
    return {
        "customer_id": record["customer_id"],
        **{name: record.get(name, "") for name in TEXT_FIELDS.values() if name != "customer_id"},
        "addresses": addresses,
        "custom_fields": [{name: value} for name, value in record.get("custom_fields", [])],
        "activities": activities,
    }


def _accepted(clean, item) -> bool:
    try:
        clean(item)
    except (ValidationError, ValueError, TypeError):
        return False
    return True


def usable_input(data: dict[str, Any], *, brand) -> dict[str, Any]:
    """The customer_create arguments without the addresses, fields and activities the
    customers services would refuse: one odd value upstream drops that item, not the contact."""
    kept = dict(data)
    kept["addresses"] = [
        item
        for item in data["addresses"]
        if _accepted(lambda x: customer_services.addresses_clean(brand=brand, addresses=[x]), item)
    ]
    kept["custom_fields"] = [
        item for item in data["custom_fields"] if _accepted(lambda x: customer_services.custom_fields_clean([x]), item)
    ]
    kept["activities"] = [
        item for item in data["activities"] if _accepted(lambda x: customer_services.activities_clean([x]), item)
    ]
    return kept


def customer_data(data: dict[str, Any], *, brand) -> CustomerData:
    """An unsaved customer (with addresses, fields and newest-first activities) built from
    usable customer_create arguments, for customers.documents to render."""
    customer = Customer(
        brand=brand,
        customer_id=data["customer_id"],
        **{name: str(data.get(name, ""))[:200] for name in ("first_name", "last_name", "company_name", "job_title")},
    )
    addresses = customer_services.addresses_clean(brand=brand, addresses=data["addresses"])
    fields = customer_services.custom_fields_clean(data["custom_fields"])
    activities = customer_services.activities_clean([dict(item) for item in data["activities"]])
    activities.sort(key=lambda a: a.occurred_at, reverse=True)
    return CustomerData(customer=customer, addresses=addresses, custom_fields=fields, activities=activities)
