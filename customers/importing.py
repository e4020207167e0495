"""Customer import and export: JSON in the Omnidesk lookup shape, or CSV.

Issue 2 ("Commands"): ``import_customers SLUG FILE`` upserts by ``customerID``;
``export_customers SLUG`` writes the same JSON shape, and a round trip changes
nothing. The formats are documented in docs/customers.md.

Import runs in chunks. Every row is parsed and validated in Python first (the
same normalization the services use: E.164 phones in the brand's default
region, lower-cased e-mail); a row with any error is rejected whole and
reported with its line (CSV) or index (JSON). The valid rows of a chunk are
then written with a few bulk queries inside one transaction that also rebuilds
the stored lookup answers (``customers.services.customers_refresh``) and emits
``customer.created`` / ``customer.updated`` per customer, so outbound webhooks
see imports exactly as they see admin edits. A customer whose row changes
nothing is not written and gets no event.

Upsert rules: a key (JSON) or column (CSV) that is absent leaves the stored
value as it is; a present one sets it. ``addresses`` and ``customFields``, when
present, replace the customer's list. ``timeline`` entries are added when new
(matched by source + externalID, or by type + time + text when there is no
externalID) and never removed.
"""

from __future__ import annotations

import csv
import io
import re
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TextIO, cast

import orjson
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, URLValidator
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, models, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from hub.models import Brand
from hub.services import brand_touch

from . import documents, services
from .models import Activity, ActivityKind, Address, AddressKind, Customer, CustomField

CHUNK_SIZE = 1000

# JSON keys of a customer besides addresses / customFields / timeline, and the
# model fields they set. The first three are the Omnidesk contract's own.
JSON_FIELDS: dict[str, str] = {
    "customerFirstname": "first_name",
    "customerLastname": "last_name",
    "displayName": "display_name",
    "companyName": "company_name",
    "jobTitle": "job_title",
    "summary": "summary",
    "timeZone": "time_zone",
    "avatarUrl": "avatar_url",
    "coverPhotoUrl": "cover_photo_url",
    "moreInfoUrl": "more_info_url",
}
JSON_KEYS = {"customerID", "addresses", "customFields", "timeline", *JSON_FIELDS}


def _concrete_field(model: type[models.Model], name: str) -> models.Field:
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field)  # a column, never a reverse relation
    return field


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)


# The M8Com type-specific activity fields (the activity service's fields beyond
# the Omnidesk timeline's own), as extra camelCase timeline keys (import and
# export), so a round trip keeps tasks' due dates, deals' amounts and so on.
_EXTRA_FIELDS = {
    name: _concrete_field(Activity, name)
    for name in services.ACTIVITY_FIELDS
    if name not in {"external_id", "source", "header", "body", "link_url"}
}


def _extras_of(kind: type[models.Field]) -> dict[str, str]:
    return {_camel(name): name for name, f in _EXTRA_FIELDS.items() if isinstance(f, kind)}


TIMELINE_TEXT_EXTRAS = _extras_of(models.CharField)
TIMELINE_TIME_EXTRAS = _extras_of(models.DateTimeField)
TIMELINE_BOOL_EXTRAS = _extras_of(models.BooleanField)
TIMELINE_EXTRAS = {
    **TIMELINE_TEXT_EXTRAS,
    **TIMELINE_TIME_EXTRAS,
    **TIMELINE_BOOL_EXTRAS,
    "durationMs": "duration_ms",
    "amount": "amount",
}
if set(TIMELINE_EXTRAS.values()) != _EXTRA_FIELDS.keys():
    raise RuntimeError("A new Activity field needs its timeline check in customers.importing._timeline_extras.")
TIMELINE_KEYS = {
    "externalID",
    "lastUpdate",
    "occurredAt",
    "type",
    "header",
    "message",
    "source",
    "url",
    *TIMELINE_EXTRAS,
}
ADDRESS_KEYS = {"address", "type", "comment"}
# Error keys of the activity service, spelled as the timeline entry's keys.
_TIMELINE_ERROR_NAMES = {
    "kind": "type",
    "occurred_at": "lastUpdate",
    "external_id": "externalID",
    "body": "message",
    "link_url": "url",
}
_ACTIVITY_KINDS = frozenset(ActivityKind.values)


_ACTIVITY_FIELDS = {
    name: _concrete_field(Activity, name) for name in ("external_id", "source", "header", "body", "link_url")
}
LAST_UPDATE_FORMAT = "%Y-%m-%d %H:%M:%S"  # Omnidesk timeline lastUpdate, brand time zone

# CSV: the customer id column, one column per customer field, address columns
# named by type with an optional comment after a colon (``phone:Work``), and
# ``field:<key>`` columns for custom fields.
CSV_ID_COLUMN = "customer_id"
CSV_FIELD_COLUMNS = services.CUSTOMER_FIELDS
CSV_ADDRESS_ALIASES = {"phone": AddressKind.TELEPHONE, "mobile": AddressKind.TELEPHONE}


class ImportFileError(Exception):
    """The file cannot be imported at all: missing, unreadable, not JSON / CSV, wrong top-level shape."""


@dataclass
class Rejected:
    where: str  # "line 7" (CSV) or "index 3" (JSON)
    customer_id: str
    errors: dict[str, list[str]]

    def __str__(self) -> str:
        reasons = "; ".join(
            f"{key}: {' '.join(message.rstrip('.') for message in messages)}" for key, messages in self.errors.items()
        )
        who = f" (customerID {self.customer_id})" if self.customer_id else ""
        return f"{self.where}{who}: {reasons}"


@dataclass
class ImportResult:
    total: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejected] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{self.total} rows: {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged, {len(self.rejected)} rejected."
        )


@dataclass
class Row:
    """One customer as read from a file, before validation (format-neutral)."""

    where: str
    customer_id: Any
    fields: dict[str, Any]
    addresses: list | None = None
    custom_fields: list | None = None
    timeline: list | None = None
    # CSV: the column each address came from, to name it in error reports.
    address_columns: list[str] | None = None
    from_csv: bool = False
    errors: dict[str, list[str]] = field(default_factory=dict)  # shape errors found while reading
    # The file held no NUL character at all (checked once per file), so the row needs no search for one.
    nul_free: bool = False


@dataclass
class _Prepared:
    where: str
    customer_id: str
    fields: dict[str, str]
    addresses: list[Address] | None
    custom_fields: list[CustomField] | None
    activities: list[Activity] | None


# ---------------------------------------------------------------- reading files


def import_file_read(path: str | Path, *, fmt: str | None = None) -> list[Row]:
    """Read a JSON or CSV import file into rows. Raises ImportFileError when it cannot be read at all."""
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(f"{path}: no such file.")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot be read ({exc.strerror}).") from exc
    if fmt is None:
        suffix = path.suffix.lower()
        if suffix == ".json":
            fmt = "json"
        elif suffix in {".csv", ".tsv", ".txt"}:
            fmt = "csv"
        else:
            fmt = "json" if raw.lstrip()[:1] in (b"[", b"{") else "csv"
    if fmt == "json":
        return json_rows_read(raw, name=str(path))
    if fmt == "csv":
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ImportFileError(f"{path}: not UTF-8 text (byte {exc.start}).") from exc
        return csv_rows_read(text, name=str(path))
    raise ImportFileError(f"Unknown format {fmt!r}; json or csv.")


def json_rows_read(raw: bytes | str, *, name: str = "the file") -> list[Row]:
    """An array of customers in the Omnidesk lookup response shape (plus the extra keys)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ImportFileError(f"{name}: not valid JSON ({exc}).") from exc
    if not isinstance(data, list):
        raise ImportFileError(
            f"{name}: expected a JSON array of customers (the Omnidesk lookup response shape), got {_json_type(data)}."
        )
    rows = [_json_row(index, item) for index, item in enumerate(data)]
    # JSON can only carry a NUL escaped (orjson refuses raw control characters in strings).
    if b"\\u0000" not in (raw.encode() if isinstance(raw, str) else raw):
        for row in rows:
            row.nul_free = True
    return rows


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _json_row(index: int, item: Any) -> Row:
    where = f"index {index}"
    if not isinstance(item, dict):
        return Row(where, "", {}, errors={"customer": [f"Expected an object, got {_json_type(item)}."]})
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(item) - JSON_KEYS)
    for key in unknown:
        errors[key] = [f"Unknown key (known: {', '.join(sorted(JSON_KEYS))})."]
    fields = {JSON_FIELDS[key]: item[key] for key in JSON_FIELDS if key in item}
    row = Row(where, item.get("customerID", ""), fields, errors=errors)
    for key, attribute in (("addresses", "addresses"), ("customFields", "custom_fields"), ("timeline", "timeline")):
        if key not in item:
            continue
        value = item[key]
        if value is None:
            value = []
        if not isinstance(value, list):
            errors[key] = [f"Expected an array, got {_json_type(value)}."]
            continue
        setattr(row, attribute, value)
    return row


def csv_rows_read(text: str, *, name: str = "the file") -> list[Row]:
    """A header row naming the columns (see docs/customers.md), then one customer per row."""
    text = text.removeprefix("\ufeff")
    header_line = text.split("\n", 1)[0]
    # Excel writes ";" where the decimal separator is a comma (nl, de, …): take the header's most used one.
    delimiter = max((",", ";", "\t"), key=header_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError(f"{name}: empty file; expected a header row starting with {CSV_ID_COLUMN}.") from None
    except csv.Error as exc:
        raise ImportFileError(f"{name}: not readable as CSV ({exc}).") from exc
    columns = [column.strip() for column in header]
    plan = _csv_plan(columns, name)
    rows: list[Row] = []
    last_line = reader.line_num
    try:
        for cells in reader:
            line, last_line = last_line + 1, reader.line_num
            if not cells or all(not cell.strip() for cell in cells):
                continue
            rows.append(_csv_row(f"line {line}", cells, columns, plan))
    except csv.Error as exc:
        raise ImportFileError(f"{name}: line {reader.line_num}: not readable as CSV ({exc}).") from exc
    if "\x00" not in text:
        for row in rows:
            row.nul_free = True
    return rows


def _csv_plan(columns: list[str], name: str) -> list[tuple[str, str, str]]:
    """For each column: (role, target, comment) with role id / field / address / custom."""
    plan: list[tuple[str, str, str]] = []
    unknown: list[str] = []
    seen_fields: set[str] = set()
    for column in columns:
        lowered = column.lower()
        if lowered == CSV_ID_COLUMN:
            plan.append(("id", "", ""))
        elif lowered in CSV_FIELD_COLUMNS and lowered not in seen_fields:
            seen_fields.add(lowered)
            plan.append(("field", lowered, ""))
        elif lowered.startswith("field:") and column[6:].strip():
            plan.append(("custom", column[6:].strip(), ""))
        else:
            kind, _, comment = column.partition(":")
            kind = CSV_ADDRESS_ALIASES.get(kind.strip().lower(), kind.strip().lower())
            if kind in AddressKind.values:
                plan.append(("address", kind, comment.strip()))
            else:
                unknown.append(column)
    if [role for role, _, _ in plan].count("id") != 1:
        raise ImportFileError(f"{name}: the header needs exactly one {CSV_ID_COLUMN} column.")
    if unknown:
        raise ImportFileError(
            f"{name}: unknown column(s) {', '.join(repr(c) for c in unknown)}. Known: {CSV_ID_COLUMN}, "
            f"{', '.join(CSV_FIELD_COLUMNS)}, an address type ({', '.join(AddressKind.values)}, phone) "
            "optionally followed by :comment, and field:<key>."
        )
    return plan


def _csv_row(where: str, cells: list[str], columns: list[str], plan: list[tuple[str, str, str]]) -> Row:
    row = Row(where, "", {}, from_csv=True)
    if len(cells) != len(columns):
        row.errors["row"] = [f"Has {len(cells)} cells; the header has {len(columns)} columns."]
        return row
    has_addresses = any(role == "address" for role, _, _ in plan)
    has_custom = any(role == "custom" for role, _, _ in plan)
    row.addresses = [] if has_addresses else None
    row.address_columns = [] if has_addresses else None
    row.custom_fields = [] if has_custom else None
    for (role, target, comment), column, cell in zip(plan, columns, cells, strict=True):
        value = cell.strip()
        if role == "id":
            row.customer_id = value
        elif role == "field":
            row.fields[target] = value
        elif role == "address" and value:
            assert row.addresses is not None and row.address_columns is not None  # set above when planned
            row.addresses.append({"type": target, "address": value, "comment": comment})
            row.address_columns.append(column)
        elif role == "custom" and value:
            assert row.custom_fields is not None
            row.custom_fields.append({target: value})
    return row


# ---------------------------------------------------------------- validation


_CUSTOMER_FIELDS = {name: _concrete_field(Customer, name) for name in services.CUSTOMER_FIELDS}
# Fields whose only check is their length (no URL / time zone validators, no choices).
_LENGTH_ONLY = {
    field
    for field in (*_CUSTOMER_FIELDS.values(), *_ACTIVITY_FIELDS.values())
    if not field.choices and all(isinstance(v, MaxLengthValidator) for v in field.validators)
}


class _CompiledURLValidator(URLValidator):
    """Django's URLValidator with its regular expression compiled once (the lazy one
    costs more per call than the match itself when 100k URLs are checked)."""

    regex = re.compile(
        cast(re.Pattern[str], URLValidator.regex).pattern, cast(re.Pattern[str], URLValidator.regex).flags
    )


_URL_VALIDATOR = _CompiledURLValidator()


_URL_ONLY = {
    field
    for field in (*_CUSTOMER_FIELDS.values(), *_ACTIVITY_FIELDS.values())
    if isinstance(field, models.URLField)
    and all(isinstance(v, (MaxLengthValidator, URLValidator)) for v in field.validators)
    and all(v.schemes == _URL_VALIDATOR.schemes for v in field.validators if isinstance(v, URLValidator))
}


def _text_clean(field: models.Field, value: str) -> str:
    """The model field's own validation, with shortcuts for plain text and URLs."""
    if not value:
        return value  # every text field here may be blank
    if field.max_length is not None and len(value) > field.max_length:
        return field.clean(value, None)  # the field's own message
    if field in _LENGTH_ONLY:
        return value
    if field in _URL_ONLY:
        _URL_VALIDATOR(value)
        return value
    return field.clean(value, None)


def _unstorable_text(row: Row) -> dict[str, list[str]]:
    """Every string of the row holding a NUL character, which PostgreSQL's text
    columns cannot store (SQLite can): the row is rejected on every database alike."""
    id_label = CSV_ID_COLUMN if row.from_csv else "customerID"
    names = {model_name: key for key, model_name in JSON_FIELDS.items()}
    found: dict[str, list[str]] = {}

    def walk(value: Any, where: str) -> None:
        if isinstance(value, str):
            if "\x00" in value:
                found[where] = ["Contains a NUL character (\\u0000), which the database cannot store."]
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(key, where)
                walk(item, f"{where}.{_printable(str(key))}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{where}[{index}]")

    walk(row.customer_id, id_label)
    for name, value in row.fields.items():
        walk(value, name if row.from_csv else names[name])
    walk(row.addresses, "addresses")
    walk(row.custom_fields, "customFields")
    walk(row.timeline, "timeline")
    return found


def _prepare(brand: Brand, row: Row, tz: zoneinfo.ZoneInfo) -> _Prepared:
    """Validate and normalize one row; ValidationError names every problem."""
    if "customer" in row.errors or "row" in row.errors:  # not a customer at all: nothing else to say
        raise ValidationError(row.errors)
    unstorable = {} if row.nul_free else _unstorable_text(row)
    if unstorable:  # nothing else is worth checking in such a value
        raise ValidationError({**row.errors, **unstorable})
    errors: dict[str, list[str]] = dict(row.errors)
    id_label = CSV_ID_COLUMN if row.from_csv else "customerID"
    customer_id = row.customer_id
    if isinstance(customer_id, int) and not isinstance(customer_id, bool):
        customer_id = str(customer_id)
    if not isinstance(customer_id, str) or not customer_id.strip():
        errors[id_label] = ["The customer's id (the brand's primary id) is required."]
        customer_id = ""
    else:
        customer_id = customer_id.strip()
        if len(customer_id) > 100:
            errors[id_label] = ["At most 100 characters."]
    fields: dict[str, str] = {}
    names = {model_name: key for key, model_name in JSON_FIELDS.items()}
    for name, value in row.fields.items():
        label = name if row.from_csv else names[name]
        if value is None:
            value = ""
        if not isinstance(value, str):
            errors[label] = [f"Expected a string, got {_json_type(value)}."]
            continue
        value = value.strip()
        try:
            value = _text_clean(_CUSTOMER_FIELDS[name], value)
        except ValidationError as exc:
            errors[label] = exc.messages
            continue
        fields[name] = value
    addresses = custom_fields = activities = None
    if row.addresses is not None:
        try:
            addresses = _addresses_prepare(brand, row)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if row.custom_fields is not None:
        try:
            custom_fields = services.custom_fields_clean(row.custom_fields)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if row.timeline is not None:
        try:
            activities = _timeline_prepare(row.timeline, tz)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    return _Prepared(row.where, customer_id, fields, addresses, custom_fields, activities)


def _addresses_prepare(brand: Brand, row: Row) -> list[Address]:
    errors: dict[str, list[str]] = {}
    for index, item in enumerate(row.addresses or []):
        if not isinstance(item, dict):
            errors[f"addresses[{index}]"] = [
                f'Expected an object such as {{"address": ..., "type": "email"}}, got {_json_type(item)}.'
            ]
            continue
        for key in sorted(set(item) - ADDRESS_KEYS):
            errors[f"addresses[{index}].{key}"] = ["Unknown key (known: address, type, comment)."]
        for key in ADDRESS_KEYS & set(item):
            if item[key] is not None and not isinstance(item[key], str):
                errors[f"addresses[{index}].{key}"] = [f"Expected a string, got {_json_type(item[key])}."]
    if errors:
        raise ValidationError(errors)
    try:
        return services.addresses_clean(brand=brand, addresses=row.addresses or [])
    except ValidationError as exc:
        if not row.from_csv:
            raise
        # CSV: name the column rather than the position in the address list.
        named: dict[str, list[str]] = {}
        for key, messages in exc.message_dict.items():
            index = int(key.split("[", 1)[1].split("]", 1)[0])
            assert row.address_columns is not None  # CSV rows with addresses carry their columns
            named[row.address_columns[index]] = messages
        raise ValidationError(named) from exc


def _timeline_prepare(timeline: list, tz: zoneinfo.ZoneInfo) -> list[Activity]:
    errors: dict[str, list[str]] = {}
    activities: list[Activity] = []
    for index, entry in enumerate(timeline):
        prefix = f"timeline[{index}]"
        if not isinstance(entry, dict):
            errors[prefix] = [f"Expected an object, got {_json_type(entry)}."]
            continue
        entry_errors: dict[str, list[str]] = {}
        for key in sorted(set(entry) - TIMELINE_KEYS):
            entry_errors[f"{prefix}.{key}"] = [f"Unknown key (known: {', '.join(sorted(TIMELINE_KEYS))})."]
        extras = _timeline_extras(entry, prefix, tz, entry_errors)
        texts: dict[str, str] = {}
        for key in (TIMELINE_KEYS - TIMELINE_EXTRAS.keys()) & set(entry):
            value = entry[key]
            if isinstance(value, int) and not isinstance(value, bool) and key == "externalID":
                value = str(value)
            if value is None:
                value = ""
            if not isinstance(value, str):
                entry_errors[f"{prefix}.{key}"] = [f"Expected a string, got {_json_type(value)}."]
                continue
            texts[key] = value.strip() if key != "message" else value
        occurred_at = None
        for key in ("occurredAt", "lastUpdate"):
            if texts.get(key):
                try:
                    occurred_at = _parse_time(texts[key], tz)
                except _TimeError as exc:
                    entry_errors[f"{prefix}.{key}"] = [str(exc)]
                break
        else:
            entry_errors[f"{prefix}.lastUpdate"] = ["A time such as 2021-12-21 15:00:11 is required."]
        values = {
            "external_id": texts.get("externalID", ""),
            "source": texts.get("source", ""),
            "header": texts.get("header", ""),
            "body": texts.get("message", ""),
            "link_url": texts.get("url", ""),
        }
        kind = texts.get("type", "").upper()
        if kind not in _ACTIVITY_KINDS:
            entry_errors[f"{prefix}.type"] = [
                f"{texts.get('type', '')!r} is not one of {', '.join(ActivityKind.values)}."
            ]
        for name, value in values.items():
            if value:
                try:
                    _text_clean(_ACTIVITY_FIELDS[name], value)
                except ValidationError as exc:
                    entry_errors[f"{prefix}.{_TIMELINE_ERROR_NAMES[name]}"] = exc.messages
        if not entry_errors:
            activities.append(_activity_new(kind=kind, occurred_at=occurred_at, **values, **extras))
        errors.update(entry_errors)
    if errors:
        raise ValidationError(errors)
    return activities


def _timeline_extras(entry: dict, prefix: str, tz: zoneinfo.ZoneInfo, errors: dict[str, list[str]]) -> dict:
    """The type-specific fields of one timeline entry, checked like the model would."""
    values: dict[str, Any] = {}
    for key in TIMELINE_EXTRAS.keys() & set(entry):
        value, name, where = entry[key], TIMELINE_EXTRAS[key], f"{prefix}.{key}"
        if value is None or value == "":
            continue
        if key in TIMELINE_TEXT_EXTRAS:
            if not isinstance(value, str):
                errors[where] = [f"Expected a string, got {_json_type(value)}."]
                continue
            try:
                values[name] = _text_clean(_EXTRA_FIELDS[name], value.strip())
            except ValidationError as exc:
                errors[where] = exc.messages
        elif key in TIMELINE_TIME_EXTRAS:
            if not isinstance(value, str):
                errors[where] = [f"{value!r} is not a time such as 2021-12-21T14:00:11Z."]
                continue
            try:
                values[name] = _parse_time(value, tz)
            except _TimeError as exc:
                errors[where] = [str(exc)]
        elif key in TIMELINE_BOOL_EXTRAS:
            if not isinstance(value, bool):
                errors[where] = [f"Expected true or false, got {_json_type(value)}."]
            else:
                values[name] = value
        elif key == "durationMs":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                errors[where] = ["Expected a whole number of milliseconds (0 or more)."]
                continue
            try:  # the column's range (a 64-bit integer): larger would overflow the database
                values[name] = _EXTRA_FIELDS[name].clean(value, None)
            except ValidationError as exc:
                errors[where] = exc.messages
        elif key == "amount":
            try:
                plain = isinstance(value, (int, float, str)) and not isinstance(value, bool)
                amount = Decimal(str(value)) if plain else None
            except InvalidOperation:
                amount = None
            if amount is None or not amount.is_finite():
                errors[where] = [f"{value!r} is not an amount such as 1200.50."]
                continue
            try:
                values[name] = _EXTRA_FIELDS[name].clean(amount, None)
            except ValidationError as exc:
                errors[where] = exc.messages
    return values


def _timeline_extras_export(activity: Activity) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, name in TIMELINE_TEXT_EXTRAS.items():
        if getattr(activity, name):
            out[key] = getattr(activity, name)
    for key, name in TIMELINE_TIME_EXTRAS.items():
        moment = getattr(activity, name)
        if moment is not None:
            out[key] = moment.astimezone(zoneinfo.ZoneInfo("UTC")).isoformat().replace("+00:00", "Z")
    for key, name in TIMELINE_BOOL_EXTRAS.items():
        value = getattr(activity, name)
        if value or (name != "markdown" and value is not None):  # done / allDay: false is information too
            out[key] = value
    if activity.duration_ms is not None:
        out["durationMs"] = activity.duration_ms
    if activity.amount is not None:
        out["amount"] = str(activity.amount)
    return out


_activity_build = services.InstanceBuilder(Activity)
_customer_build = services.InstanceBuilder(Customer)


def _activity_new(**values: Any) -> Activity:
    return _activity_build(values)


class _TimeError(ValueError):
    """A timeline time that cannot be imported; the message is the rejection reason."""


# A stored time must be representable in every time zone (documents and exports render
# it in the brand's zone, and SQLite stores it as naive UTC): a day inside Python's range.
_EARLIEST = datetime.min.replace(tzinfo=UTC) + timedelta(days=1)
_LATEST = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)


def _parse_time(text: str, tz: zoneinfo.ZoneInfo) -> datetime:
    """Omnidesk's "2021-12-21 15:00:11" (brand time zone) or ISO 8601 with an offset.

    Raises _TimeError naming the problem: not a time, or a time outside what every
    database and time zone can hold (year 1 with a positive offset, year 9999 with a
    negative one): rejected with its row, never an OverflowError for the whole import.
    """
    value: datetime | None
    try:
        value = datetime.fromisoformat(text)  # C-fast; covers both spellings
    except ValueError:
        try:
            value = parse_datetime(text)
        except ValueError:
            value = None
    if value is None:
        raise _TimeError(f"{text!r} is not a time such as 2021-12-21 15:00:11 or 2021-12-21T14:00:11Z.")
    if timezone.is_naive(value):
        value = value.replace(tzinfo=tz)
    try:
        in_range = _EARLIEST <= value.astimezone(UTC) <= _LATEST
    except OverflowError:
        in_range = False
    if not in_range:
        raise _TimeError(f"{text!r} is outside the times the hub can store (0001-01-02 to 9999-12-30 UTC).")
    return value


def _activity_key(kind: str, source: str, external_id: str, occurred_at: datetime, header: str, body: str) -> tuple:
    """Identity of a timeline entry: (source, external id) when it has one, else what it says and when."""
    if external_id:
        return ("x", source, external_id)
    return ("t", kind, int(occurred_at.timestamp()), header, body)


# ---------------------------------------------------------------- import


def customers_import(
    *,
    brand: Brand,
    rows: Iterable[Row],
    chunk_size: int = CHUNK_SIZE,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Upsert customers by customerID; returns counts and the rejected rows with reasons."""
    rows = list(rows)
    result = ImportResult(total=len(rows))
    tz = zoneinfo.ZoneInfo(brand.time_zone)
    seen: dict[str, str] = {}
    done = 0
    for start in range(0, len(rows), chunk_size):
        batch = rows[start : start + chunk_size]
        prepared: list[_Prepared] = []
        for row in batch:
            try:
                item = _prepare(brand, row, tz)
            except ValidationError as exc:
                result.rejected.append(Rejected(row.where, _id_text(row.customer_id), exc.message_dict))
                continue
            if item.customer_id in seen:
                result.rejected.append(
                    Rejected(
                        row.where,
                        item.customer_id,
                        {
                            CSV_ID_COLUMN if row.from_csv else "customerID": [
                                f"Appears earlier in the file ({seen[item.customer_id]})."
                            ]
                        },
                    )
                )
                continue
            seen[item.customer_id] = row.where
            prepared.append(item)
        _chunk_write_safely(brand, prepared, result)
        done += len(batch)
        if progress is not None:
            progress(done, len(rows))
    return result


def _id_text(value: Any) -> str:
    return _printable(value.strip()) if isinstance(value, str) else str(value) if isinstance(value, int) else ""


def _printable(text: str) -> str:
    """A value for the rejection report: a NUL shown escaped, not written to the terminal."""
    return text.replace("\x00", "\\u0000")


# What the database (or its driver adapting a value) raises for a row it cannot
# store: DatabaseError on PostgreSQL; OverflowError / ValueError from SQLite's adapters.
_ROW_WRITE_ERRORS = (DatabaseError, OverflowError, ValueError)


def _chunk_write_safely(brand: Brand, prepared: list[_Prepared], result: ImportResult) -> None:
    """Write a chunk; if the database refuses it (a value validation missed, a
    concurrent writer), retry row by row and reject only the rows it refuses."""
    if not prepared:
        return
    counts: tuple[int, ...]
    try:
        counts = _chunk_write(brand, prepared)
    except _ROW_WRITE_ERRORS:
        counts = (0, 0, 0)
        for item in prepared:
            try:
                one = _chunk_write(brand, [item])
            except _ROW_WRITE_ERRORS as exc:
                result.rejected.append(Rejected(item.where, item.customer_id, {"database": [_printable(str(exc))]}))
                continue
            counts = tuple(a + b for a, b in zip(counts, one, strict=True))
    result.created += counts[0]
    result.updated += counts[1]
    result.unchanged += counts[2]


def _chunk_write(brand: Brand, prepared: list[_Prepared]) -> tuple[int, int, int]:
    """One transaction: new customers in bulk, changed ones through the ORM, one event per customer."""
    now = timezone.now()
    with transaction.atomic():
        existing = dict(
            Customer.objects.select_for_update()
            .filter(brand=brand, customer_id__in=[item.customer_id for item in prepared])
            .order_by()  # no ORDER BY: the model's ordering makes SQLite scan the brand's name index
            .values_list("customer_id", "pk")
        )
        created = _customers_insert(brand, [item for item in prepared if item.customer_id not in existing], now)
        updated, unchanged = _customers_update(
            brand, [(existing[item.customer_id], item) for item in prepared if item.customer_id in existing], now
        )
        if created or updated:
            brand_touch(brand_id=brand.pk)
    return created, updated, unchanged


def _rows_insert(model: type[models.Model], objects: list, names: list[str]) -> None:
    """A plain multi-row INSERT through the cursor (executemany): the ORM's per-value
    compilation costs more than SQLite itself for 100k rows."""
    if not objects:
        return
    conn = connections[DEFAULT_DB_ALIAS]
    fields = [_concrete_field(model, name) for name in names]
    # Text and foreign-key values go to the driver as they are; others through the field.
    plain = [isinstance(f, (models.CharField, models.TextField)) or f.is_relation for f in fields]
    attnames = [f.attname for f in fields]
    quote = conn.ops.quote_name
    table = quote(model._meta.db_table)
    columns = ", ".join(quote(f.attname if f.column is None else f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"  # noqa: S608 (names from model metadata)
    # Other values (times, numbers) through the field once per distinct value and column:
    # an import's rows share most of them (the chunk's created_at, positions, flags).
    prepared: list[dict[Any, Any]] = [{} for _ in fields]
    params = []
    for obj in objects:
        values = obj.__dict__
        row = []
        for model_field, value, is_plain, seen in zip(
            fields, map(values.__getitem__, attnames), plain, prepared, strict=True
        ):
            if is_plain or value is None:
                row.append(value)
                continue
            key = (type(value), value)
            try:
                row.append(seen[key])
            except KeyError:
                seen[key] = model_field.get_db_prep_save(value, conn)
                row.append(seen[key])
        params.append(row)
    with conn.cursor() as cursor:
        cursor.executemany(sql, params)


_CUSTOMER_COLUMNS = [
    f.name for f in Customer._meta.concrete_fields if f.name not in {"id", "brand"} and not f.primary_key
] + ["brand"]
_ADDRESS_COLUMNS = ["brand", "customer", "kind", "value", "normalized", "digits_reversed", "comment", "position"]
_CUSTOM_FIELD_COLUMNS = ["customer", "position", "key", "value"]
_ACTIVITY_COLUMNS = [f.name for f in Activity._meta.concrete_fields if not f.primary_key]


def _timeline_for_documents(activities: list[Activity]) -> list[Activity]:
    """What documents.load selects: newest first, at most FETCH_PER_KIND per type
    (ties in time: the later row first, as its id is larger)."""
    ordered = [a for _, a in sorted(enumerate(activities), key=lambda p: (p[1].occurred_at, p[0]), reverse=True)]
    counts: dict[str, int] = {}
    kept = []
    for activity in ordered:
        counts[activity.kind] = counts.get(activity.kind, 0) + 1
        if counts[activity.kind] <= documents.FETCH_PER_KIND:
            kept.append(activity)
    return kept


def _customers_insert(brand: Brand, items: list[_Prepared], now: datetime) -> int:
    """New customers: lookup answers rendered in memory, rows written with executemany."""
    if not items:
        return 0
    loaded: list[documents.CustomerData] = []
    refresh_later: list[documents.CustomerData] = []
    for item in items:
        customer = _customer_build(
            {"customer_id": item.customer_id, "created_at": now, "updated_at": now, **item.fields}, {"brand": brand}
        )
        activities = _new_activities(item.activities or [], set())
        for activity in activities:
            activity.created_at = now
        data = documents.CustomerData(customer, item.addresses or [], item.custom_fields or [], activities)
        loaded.append(data)
        if all(activity.external_id for activity in activities):
            # The Omnidesk timeline shows an entry's id only when it has no external id.
            shown = documents.CustomerData(
                customer, data.addresses, data.custom_fields, _timeline_for_documents(activities)
            )
            customer.omnidesk_document, customer.m8com_document = documents.render(shown)
        else:
            refresh_later.append(data)
    _rows_insert(Customer, [data.customer for data in loaded], _CUSTOMER_COLUMNS)
    pks = dict(
        Customer.objects.filter(brand=brand, customer_id__in=[item.customer_id for item in items])
        .order_by()
        .values_list("customer_id", "pk")
    )
    addresses, custom_fields, activities = [], [], []
    for data in loaded:
        customer = data.customer
        customer.pk = pk = pks[customer.customer_id]
        customer._state.adding = False
        customer._state.db = connection.alias
        # Into __dict__ directly: the children were built without a related object
        # cached, so the foreign-key descriptors' bookkeeping has nothing to do.
        for address in data.addresses:
            address.__dict__["customer_id"] = pk
            address.__dict__["brand_id"] = brand.pk
        for custom_field in data.custom_fields:
            custom_field.__dict__["customer_id"] = pk
        for activity in data.activities:
            activity.__dict__["customer_id"] = pk
        addresses += data.addresses
        custom_fields += data.custom_fields
        activities += data.activities
    _rows_insert(Address, addresses, _ADDRESS_COLUMNS)
    _rows_insert(CustomField, custom_fields, _CUSTOM_FIELD_COLUMNS)
    _rows_insert(Activity, activities, _ACTIVITY_COLUMNS)
    refreshed = services.customers_refresh(customer_ids=[d.customer.pk for d in refresh_later]) if refresh_later else {}
    for data in loaded:
        services.customer_event_emit(event_type="customer.created", data=refreshed.get(data.customer.pk, data))
    return len(loaded)


def _customers_update(brand: Brand, items: list[tuple[int, _Prepared]], now: datetime) -> tuple[int, int]:
    """Existing customers: compared with plain-value queries; only the changed ones are written."""
    if not items:
        return 0, 0
    pks = [pk for pk, _ in items]
    current = {
        row["pk"]: row for row in Customer.objects.filter(pk__in=pks).order_by().values("pk", *services.CUSTOMER_FIELDS)
    }
    stored_addresses: dict[int, list[tuple]] = {}
    with_addresses = [pk for pk, item in items if item.addresses is not None]
    for row in (
        Address.objects.filter(customer_id__in=with_addresses)
        .order_by("customer_id", "position", "pk")
        .values_list("customer_id", "kind", "value", "normalized", "comment")
    ):
        stored_addresses.setdefault(row[0], []).append(row[1:])
    stored_fields: dict[int, list[tuple]] = {}
    with_fields = [pk for pk, item in items if item.custom_fields is not None]
    for field_row in (
        CustomField.objects.filter(customer_id__in=with_fields)
        .order_by("customer_id", "position", "pk")
        .values_list("customer_id", "key", "value")
    ):
        stored_fields.setdefault(field_row[0], []).append(field_row[1:])
    known_activities: dict[int, set[tuple]] = {}
    with_timeline = [pk for pk, item in items if item.activities]
    for activity_row in Activity.objects.filter(customer_id__in=with_timeline).values_list(
        "customer_id", "kind", "source", "external_id", "occurred_at", "header", "body"
    ):
        known_activities.setdefault(activity_row[0], set()).add(_activity_key(*activity_row[1:]))

    changes: dict[int, tuple[_Prepared, dict[str, Any], bool, bool, list[Activity]]] = {}
    for pk, item in items:
        fields = {name: value for name, value in item.fields.items() if current[pk][name] != value}
        addresses_differ = item.addresses is not None and _address_rows(item.addresses) != stored_addresses.get(pk, [])
        fields_differ = item.custom_fields is not None and _field_rows(item.custom_fields) != stored_fields.get(pk, [])
        activities = _new_activities(item.activities or [], known_activities.get(pk, set()))
        if fields or addresses_differ or fields_differ or activities:
            changes[pk] = (item, fields, addresses_differ, fields_differ, activities)
    if not changes:
        return 0, len(items)

    before = {data.customer.pk: documents.snapshot(data) for data in documents.load(list(changes))}
    replace_addresses: dict[int, list[Address]] = {}
    replace_fields: dict[int, list[CustomField]] = {}
    new_activities: list[Activity] = []
    for pk, (item, fields, addresses_differ, fields_differ, activities) in changes.items():
        if fields or addresses_differ or fields_differ:
            Customer.objects.filter(pk=pk).update(**fields, updated_at=now)
        if addresses_differ:
            replace_addresses[pk] = item.addresses or []
        if fields_differ:
            replace_fields[pk] = item.custom_fields or []
        for activity in activities:
            activity.customer_id = pk
            activity.created_at = now
        new_activities += activities
    _children_replace(brand, replace_addresses, replace_fields)
    _rows_insert(Activity, new_activities, _ACTIVITY_COLUMNS)
    refreshed = services.customers_refresh(customer_ids=list(changes))
    for pk, old in before.items():
        new = documents.snapshot(refreshed[pk])
        names = sorted(key for key in new if key != "updated_at" and new[key] != old.get(key))
        if names:
            services.customer_event_emit(event_type="customer.updated", data=refreshed[pk], changed=names)
    return len(changes), len(items) - len(changes)


def _address_rows(addresses: list[Address]) -> list[tuple[str, str, str, str]]:
    return [(a.kind, a.value, a.normalized, a.comment) for a in addresses]


def _field_rows(custom_fields: list[CustomField]) -> list[tuple[str, str]]:
    return [(f.key, f.value) for f in custom_fields]


def _new_activities(activities: list[Activity], known: set[tuple]) -> list[Activity]:
    fresh = []
    for activity in activities:
        key = _activity_key(
            activity.kind, activity.source, activity.external_id, activity.occurred_at, activity.header, activity.body
        )
        if key in known:
            continue
        known.add(key)
        fresh.append(activity)
    return fresh


def _children_replace(
    brand: Brand, addresses: dict[int, list[Address]], custom_fields: dict[int, list[CustomField]]
) -> None:
    if addresses:
        Address.objects.filter(customer_id__in=list(addresses)).delete()
        rows = []
        for pk, items in addresses.items():
            for address in items:
                address.customer_id = pk
                address.brand_id = brand.pk
                rows.append(address)
        _rows_insert(Address, rows, _ADDRESS_COLUMNS)
    if custom_fields:
        CustomField.objects.filter(customer_id__in=list(custom_fields)).delete()
        field_rows: list[CustomField] = []
        for pk, fields in custom_fields.items():
            for custom_field in fields:
                custom_field.customer_id = pk
                field_rows.append(custom_field)
        _rows_insert(CustomField, field_rows, _CUSTOM_FIELD_COLUMNS)


# ---------------------------------------------------------------- export


def customers_export(*, brand: Brand, out: TextIO, batch_size: int = CHUNK_SIZE) -> int:
    """Write every customer of the brand as a JSON array in the import shape; returns the count.

    The whole timeline is written (the lookup answers carry only the newest
    entries), with ``occurredAt`` at full precision so a re-import matches it.
    """
    tz = zoneinfo.ZoneInfo(brand.time_zone)
    pks = list(Customer.objects.filter(brand=brand).order_by("pk").values_list("pk", flat=True))
    out.write("[")
    first = True
    for start in range(0, len(pks), batch_size):
        for item in _export_batch(pks[start : start + batch_size], tz):
            out.write("\n  " if first else ",\n  ")
            out.write(orjson.dumps(item).decode())
            first = False
    out.write("\n]\n" if pks else "]\n")
    return len(pks)


def _export_batch(pks: list[int], tz: zoneinfo.ZoneInfo) -> Iterator[dict[str, Any]]:
    addresses: dict[int, list[Address]] = {}
    for address in Address.objects.filter(customer_id__in=pks).order_by("customer_id", "position", "pk"):
        addresses.setdefault(address.customer_id, []).append(address)
    custom_fields: dict[int, list[CustomField]] = {}
    for custom_field in CustomField.objects.filter(customer_id__in=pks).order_by("customer_id", "position", "pk"):
        custom_fields.setdefault(custom_field.customer_id, []).append(custom_field)
    timeline: dict[int, list[Activity]] = {}
    for activity in Activity.objects.filter(customer_id__in=pks).order_by("customer_id", "-occurred_at", "-pk"):
        timeline.setdefault(activity.customer_id, []).append(activity)
    for customer in Customer.objects.filter(pk__in=pks).order_by("pk"):
        yield customer_export_item(
            customer,
            addresses.get(customer.pk, []),
            custom_fields.get(customer.pk, []),
            timeline.get(customer.pk, []),
            tz,
        )


def customer_export_item(
    customer: Customer,
    addresses: list[Address],
    custom_fields: list[CustomField],
    timeline: list[Activity],
    tz: zoneinfo.ZoneInfo,
) -> dict[str, Any]:
    """The Omnidesk element's keys (addresses as given, with comments), then the extra keys when set."""
    item: dict[str, Any] = {
        "addresses": [_address_item(a) for a in addresses],
        "customerFirstname": customer.first_name,
        "customerID": customer.customer_id,
        "customerLastname": customer.last_name,
        "customFields": [{f.key: f.value} for f in custom_fields],
        "timeline": [_timeline_item(a, tz) for a in timeline],
    }
    for key, name in JSON_FIELDS.items():
        if key not in item and getattr(customer, name):
            item[key] = getattr(customer, name)
    return item


def _address_item(address: Address) -> dict[str, str]:
    item = {"address": address.value, "type": address.kind}
    if address.comment:
        item["comment"] = address.comment
    return item


def _timeline_item(activity: Activity, tz: zoneinfo.ZoneInfo) -> dict[str, Any]:
    item = {
        "externalID": activity.external_id,
        "lastUpdate": activity.occurred_at.astimezone(tz).strftime(LAST_UPDATE_FORMAT),
        "type": activity.kind.lower(),
        "message": activity.body,
        "source": activity.source,
        "url": activity.link_url,
    }
    if activity.header:
        item["header"] = activity.header
    item["occurredAt"] = activity.occurred_at.astimezone(zoneinfo.ZoneInfo("UTC")).isoformat().replace("+00:00", "Z")
    item.update(_timeline_extras_export(activity))
    return item


def rows_from_mappings(items: Iterable[Mapping[str, Any]]) -> list[Row]:
    """Rows from already-parsed JSON items (tests, other callers)."""
    return [_json_row(index, item) for index, item in enumerate(items)]
