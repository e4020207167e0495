"""What "filtered" means for the logs, in one place.

The inbound and outbound admin lists, the unified Logs page, the CSV exports
and the dashboard's links all use these conditions and these query-string
names, so a link built in one place selects the same rows everywhere:

``integration``  inbound endpoint family or endpoint (``omnidesk``, ``m8com.lookup``),
                 or outbound source kind (``crm_action``, ``rule``)
``source``       one CRM sync or dispatcher rule (``crmsync:<id>``, ``rule:<id>``)
``outcome``      ``ok``, ``failed``, ``2xx``, ``3xx``, ``4xx``, ``5xx``, ``none`` (no answer)
``from``/``to``  dates (``2026-11-30``, both inclusive) or local times (``2026-11-30T14:00``)
``customer``     the brand's customer ID (Omnidesk primaryID), exactly
``event``        the inbound event a call delivered (inbound only)
``q``            free text: customer ID, URL or path, message id, source, note, error

The unified Logs page and its CSV accept these names (and ``p``, the page) and
nothing else: an unknown parameter answers 400, as an undeclared lookup does on
the admin lists (hub.tenancy.BrandScopedAdmin.lookup_allowed). Which rows and
customers a user may see is asked of hub.scoping, never derived here.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta

from django.apps import apps
from django.contrib import admin
from django.contrib.admin.exceptions import DisallowedModelAdminLookup
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from hub import scoping

INBOUND = "inbound"
OUTBOUND = "outbound"
DIRECTIONS = [(INBOUND, "Inbound (platform → hub)"), (OUTBOUND, "Outbound (hub → webhook)")]

# (value, label, direction). Inbound: the endpoint family before the dot
# (hooks.inbound: "omnidesk.lookup", "servicehooks.outbound-call"); outbound: Delivery.source_kind.
INTEGRATIONS = [
    ("omnidesk", "Omnidesk customer lookup", INBOUND),
    ("m8com", "M8Com lookup and call logging", INBOUND),
    ("servicehooks", "Contact-center service hooks", INBOUND),
    ("crm_action", "CRM sync (Deskpro-style)", OUTBOUND),
    ("rule", "Dispatcher rule (EddyDesk-style)", OUTBOUND),
]
INBOUND_FAMILIES = {value for value, _label, direction in INTEGRATIONS if direction == INBOUND}
OUTBOUND_KINDS = {value for value, _label, direction in INTEGRATIONS if direction == OUTBOUND}

OUTCOMES = [
    ("ok", "Successful"),
    ("failed", "Failed"),
    ("2xx", "2xx"),
    ("3xx", "3xx"),
    ("4xx", "4xx"),
    ("5xx", "5xx"),
    ("none", "No answer (timeout, refused, ...)"),
]
_STATUS_CLASS = re.compile(r"^([1-5])xx$")
_EVENT_NOTE = re.compile(r"^event (\d+)\b")

TIME_FIELD = {INBOUND: "created_at", OUTBOUND: "started_at"}


def inbound_ok_q() -> Q:
    """An inbound call succeeded when the hub answered below 400; M8Com's lookup
    answers 404 for "no contact found", which is a correct answer."""
    return Q(status__lt=400) | Q(endpoint="m8com.lookup", status=404)


def integration_q(direction: str, value: str) -> Q | None:
    """None: no row of this direction can match (an outbound kind asked of inbound calls)."""
    value = value.strip()
    if not value:
        return Q()
    if direction == INBOUND:
        if value in OUTBOUND_KINDS:
            return None
        return Q(endpoint=value) | Q(endpoint__startswith=f"{value}.")
    if value in INBOUND_FAMILIES or "." in value:
        return None
    return Q(delivery__source_kind=value)


def source_q(direction: str, value: str, *, delivery: str = "delivery__") -> Q | None:
    """One CRM sync (all three of its actions) or one dispatcher rule; ``delivery``:
    the path from the filtered rows to their Delivery ("" for the delivery list)."""
    kind, _, pk = value.partition(":")
    if not pk.isdigit():
        return Q() if not value else None
    if direction == INBOUND:
        return None
    if kind == "crmsync":
        try:
            action_model = apps.get_model("outbound", "CrmSyncAction")
        except LookupError:
            return None
        return Q(
            **{
                f"{delivery}source_kind": "crm_action",
                f"{delivery}source_id__in": action_model.objects.filter(sync_id=int(pk)).values("pk"),
            }
        )
    return Q(**{f"{delivery}source_kind": kind, f"{delivery}source_id": int(pk)})


def outcome_q(direction: str, value: str) -> Q | None:
    if not value:
        return Q()
    status = "status" if direction == INBOUND else "response_status"
    if value == "ok":
        return inbound_ok_q() if direction == INBOUND else Q(succeeded=True)
    if value == "failed":
        return ~inbound_ok_q() if direction == INBOUND else Q(succeeded=False)
    if value == "none":
        return None if direction == INBOUND else Q(response_status__isnull=True)
    match = _STATUS_CLASS.match(value)
    if match:
        low = int(match.group(1)) * 100
        return Q(**{f"{status}__gte": low, f"{status}__lt": low + 100})
    return None


def parse_moment(value: str, *, end: bool = False) -> tuple[datetime, bool] | None:
    """A date (the whole day: ``end`` gives the next midnight, exclusive) or a
    local date-time (exact, inclusive). Returns (moment, inclusive)."""
    value = (value or "").strip()
    if not value:
        return None
    tz = timezone.get_current_timezone()
    try:
        moment = parse_datetime(value)
        if moment is not None:
            return (moment if timezone.is_aware(moment) else timezone.make_aware(moment, tz)), True
        day = parse_date(value)
    except ValueError:
        return None
    if day is None:
        return None
    if end:
        return timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min), tz), False
    return timezone.make_aware(datetime.combine(day, time.min), tz), True


def date_q(direction: str, date_from: str, date_to: str, *, field: str | None = None) -> Q:
    field = field or TIME_FIELD[direction]
    condition = Q()
    start, stop = parse_moment(date_from), parse_moment(date_to, end=True)
    if start is not None:
        condition &= Q(**{f"{field}__gte": start[0]})
    if stop is not None:
        moment, inclusive = stop
        condition &= Q(**{f"{field}__lte" if inclusive else f"{field}__lt": moment})
    return condition


def _customer_pks(customer_ref: str, *, user):
    """Customers with this customer ID in the user's brands: one probe of the
    unique (brand, customer_id) index per brand, not a scan of every customer."""
    customers = apps.get_model("customers", "Customer").objects.filter(customer_id=customer_ref)
    return scoping.restrict(customers, user=user, action=scoping.VIEW, per_brand=True).values("pk")


def customer_q(direction: str, value: str, *, user, delivery: str = "delivery__") -> Q:
    """The brand's customer ID, exactly. Outbound deliveries keep the hub's own
    customer id; a deleted customer's rows are no longer found by its customer ID."""
    value = value.strip()
    if not value:
        return Q()
    pks = _customer_pks(value, user=user)
    return Q(customer_id__in=pks) if direction == INBOUND else Q(**{f"{delivery}customer_id__in": pks})


def event_q(direction: str, value: str) -> Q | None:
    """The inbound call that delivered event <id> (its note reads "event <id> <state>")."""
    if not value:
        return Q()
    if direction == OUTBOUND or not value.isdigit():
        return None
    return Q(note__startswith=f"event {int(value)} ") | Q(note=f"event {int(value)}")


def event_id_of(note: str) -> int | None:
    match = _EVENT_NOTE.match(note or "")
    return int(match.group(1)) if match else None


# What the search box looks in besides the customer ID, per direction.
SEARCH_LOOKUPS = {
    INBOUND: (
        "path__icontains",
        "query__icontains",
        "note__icontains",
        "endpoint__icontains",
        "credential_prefix",
        "remote_addr",
    ),
    OUTBOUND: (
        "url__icontains",
        "delivery__message_id",
        "delivery__source_name__icontains",
        "delivery__event_type",
        "error__icontains",
        "note__icontains",
    ),
}


def search_q(direction: str, term: str, *, user) -> Q:
    term = term.strip()
    if not term:
        return Q()
    condition = customer_q(direction, term, user=user)
    for lookup in SEARCH_LOOKUPS[direction]:
        condition |= Q(**{lookup: term})
    return condition


class LogQuery:
    """The filters of one request (the unified Logs page and its CSV export)."""

    FIELDS = ("brand", "direction", "integration", "source", "outcome", "from", "to", "customer", "event", "q")
    PAGE = "p"

    def __init__(self, data):
        unknown = sorted(set(data) - {*self.FIELDS, self.PAGE})
        if unknown:
            # Django answers 400 (a SuspiciousOperation), as for an undeclared admin lookup.
            raise DisallowedModelAdminLookup(f"Filtering by {unknown[0]} not allowed")
        self.values = {name: (data.get(name) or "").strip() for name in self.FIELDS}

    def __getitem__(self, name: str) -> str:
        return self.values[name]

    @property
    def active(self) -> dict[str, str]:
        return {name: value for name, value in self.values.items() if value}

    def directions(self) -> list[str]:
        wanted = self.values["direction"]
        return [d for d in (INBOUND, OUTBOUND) if not wanted or wanted == d]

    def apply(self, direction: str, queryset, *, user):
        """The queryset (already restricted to the user's brands by hub.scoping)
        narrowed to these filters, or None when nothing can match."""
        v = self.values
        brand = v["brand"]
        if brand:
            if not brand.isdigit():
                return None
            queryset = queryset.filter(brand_id=int(brand))
        for condition in (
            integration_q(direction, v["integration"]),
            source_q(direction, v["source"]),
            outcome_q(direction, v["outcome"]),
            event_q(direction, v["event"]),
            date_q(direction, v["from"], v["to"]),
            customer_q(direction, v["customer"], user=user),
            search_q(direction, v["q"], user=user),
        ):
            if condition is None:
                return None
            queryset = queryset.filter(condition)
        return queryset


# ------------------------------------------------------------ admin list filters


class _DirectionalFilter(admin.SimpleListFilter):
    direction = INBOUND

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        condition = self.condition(self.value())
        return queryset.none() if condition is None else queryset.filter(condition)

    def condition(self, value: str) -> Q | None:
        raise NotImplementedError


class IntegrationFilter(_DirectionalFilter):
    title = "integration"
    parameter_name = "integration"

    def lookups(self, request, model_admin):
        return [(value, label) for value, label, direction in INTEGRATIONS if direction == self.direction]

    def condition(self, value):
        return integration_q(self.direction, value)


class OutcomeFilter(_DirectionalFilter):
    title = "outcome"
    parameter_name = "outcome"

    def lookups(self, request, model_admin):
        return [(value, label) for value, label in OUTCOMES if self.direction == OUTBOUND or value != "none"]

    def condition(self, value):
        return outcome_q(self.direction, value)


class SourceFilter(_DirectionalFilter):
    """One CRM sync or dispatcher rule of the user's brands (the configuration's current name)."""

    title = "sync or rule"
    parameter_name = "source"
    direction = OUTBOUND
    delivery_path = "delivery__"  # "" on the delivery list itself

    def lookups(self, request, model_admin):
        return source_choices(request.user)

    def has_output(self):
        # A link may name a source that has no configuration any more: still filter by it.
        return super().has_output() or bool(self.value())

    def condition(self, value):
        return source_q(self.direction, value, delivery=self.delivery_path)


def source_choices(user) -> list[tuple[str, str]]:
    choices = []
    for label, kind, name_prefix in (("outbound.CrmSync", "crmsync", "CRM sync"), ("rules.EventRule", "rule", "Rule")):
        try:
            model = apps.get_model(label)
        except LookupError:
            continue
        sources = scoping.restrict(model.objects.all(), user=user, action=scoping.VIEW)
        for pk, name in sources.order_by("name").values_list("pk", "name")[:200]:
            choices.append((f"{kind}:{pk}", f"{name_prefix}: {name}"))
    return choices


class InputFilter(admin.ListFilter):
    """A filter typed into boxes (dates, a customer ID) rather than picked from links."""

    template = "admin/synclog/input_filter.html"
    parameters: tuple[tuple[str, str, str], ...] = ()  # (name, label, input type)
    # The boxes' stripped strings (see __init__); the stubs type ListFilter's as
    # dict[str, object] and narrow SimpleListFilter's the same way.
    used_parameters: dict[str, str]  # type: ignore[assignment]

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        for name, _label, _kind in self.parameters:
            if name in params:
                value = params.pop(name)
                self.used_parameters[name] = (value[-1] if isinstance(value, list) else value).strip()

    def has_output(self):
        return True

    def expected_parameters(self):
        return [name for name, _label, _kind in self.parameters]

    def choices(self, changelist):
        names = set(self.expected_parameters())
        hidden = [(k, v) for k, v in changelist.params.items() if k not in names]
        yield {
            "fields": [
                {"name": name, "label": label, "type": _input_type(kind, value), "value": value}
                for name, label, kind in self.parameters
                for value in [self.used_parameters.get(name, "")]
            ],
            "hidden": hidden,
            "clear_url": changelist.get_query_string(remove=list(names)),
            "active": any(self.used_parameters.get(name) for name in names),
            "error": self.error(),
        }

    def error(self) -> str:
        return ""


def _input_type(kind: str, value: str) -> str:
    """A dashboard link may carry a time (2026-11-30T14:00): a date box would drop it."""
    return "datetime-local" if kind == "date" and "T" in value else kind


class DateRangeFilter(InputFilter):
    title = "date range"
    parameters = (("from", "from", "date"), ("to", "to (inclusive)", "date"))
    direction = INBOUND
    time_field: str | None = None  # default: the log's own time (synclog.filters.TIME_FIELD)

    def queryset(self, request, queryset):
        if self.error():
            return queryset.none()
        return queryset.filter(
            date_q(
                self.direction,
                self.used_parameters.get("from", ""),
                self.used_parameters.get("to", ""),
                field=self.time_field,
            )
        )

    def error(self) -> str:
        bad = [
            name
            for name in ("from", "to")
            if self.used_parameters.get(name) and parse_moment(self.used_parameters[name]) is None
        ]
        return f"Not a date: {', '.join(bad)} (use YYYY-MM-DD)." if bad else ""


class CustomerFilter(InputFilter):
    title = "customer"
    parameters = (("customer", "customer ID", "text"),)
    direction = INBOUND
    delivery_path = "delivery__"  # "" on the delivery list itself

    def queryset(self, request, queryset):
        value = self.used_parameters.get("customer", "")
        if not value:  # no box filled in: no need to read the user's brands
            return queryset
        return queryset.filter(customer_q(self.direction, value, user=request.user, delivery=self.delivery_path))


class EventFilter(InputFilter):
    """Hidden unless used: the call that delivered one inbound event (linked from the event)."""

    title = "inbound event"
    parameters = (("event", "event id", "text"),)
    direction = INBOUND

    def has_output(self):
        return bool(self.used_parameters.get("event"))

    def queryset(self, request, queryset):
        condition = event_q(self.direction, self.used_parameters.get("event", ""))
        return queryset.none() if condition is None else queryset.filter(condition)


def for_direction(filter_class, direction: str, **attrs):
    """The filter class bound to one direction (the list filters are per model);
    ``attrs``: e.g. ``delivery_path=""`` for the delivery list, ``time_field``."""
    return type(f"{direction.title()}{filter_class.__name__}", (filter_class,), {"direction": direction, **attrs})
