"""Contact-center service hooks: ``POST /hooks/servicehooks/<brand-slug>/<event-type>``.

Event types (contract "Service Hooks"): ``abandoned-conversation`` (customer
phone number, time in queue, timestamp, queue), ``outbound-call`` (agentID,
targetPhoneNumber, Timestamp) and ``workitem-closed`` (id, mediaType,
isOutbound, createdAt, closedAt, agent{...}, customerIdentifier, customerId,
primaryConversationId, completionCode, notes, result). Auth: the ``x-api-key``
header, against an active ``servicehooks`` key of the brand.

The contract's JSON schema cannot be downloaded, so field names are matched
loosely: case, ``_``, ``-`` and spaces are ignored, and the spellings listed in
:data:`ALIASES` are accepted (docs/inbound-events.md lists them). The raw
payload is always kept and extra fields never cause a rejection.

The contract marks no field required: an event without a phone number, id or
target is interpreted all the same (and is ``unmatched`` when it names no
customer). A field that is present but cannot be read (a list for a phone
number, a time no calendar holds, "Infinity" seconds in a queue) keeps the
event ``invalid``, stored, with the reason. The endpoint is the shared accept
path (hooks.inbound.common.EventAcceptApi).
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import re_path
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.authentication import BaseAuthentication

from hub.exceptions import Forbidden, NotAuthenticated, NotFound
from hub.models import Integration

from .common import EventAcceptApi, InboundCall, error_response, openapi_error, openapi_event_responses
from .models import EventSource
from .registry import Interpretation, Unreadable, register_interpreter
from .services import content_hash, format_duration, iso

logger = logging.getLogger(__name__)

EVENT_SOURCES = {
    "abandoned-conversation": EventSource.ABANDONED_CONVERSATION,
    "outbound-call": EventSource.OUTBOUND_CALL,
    "workitem-closed": EventSource.WORKITEM_CLOSED,
}
# URL spellings accepted besides the canonical ones above.
EVENT_TYPE_SPELLINGS = {
    "abandonedconversation": "abandoned-conversation",
    "outboundcall": "outbound-call",
    "workitemclosed": "workitem-closed",
}

# Accepted spellings, compared after lower-casing and dropping "_", "-", " " and ".".
ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "eventid", "notificationid", "interactionid", "workitemid"),
    "conversationId": ("conversationid", "primaryconversationid"),
    "customerPhoneNumber": (
        "customerphonenumber",
        "customerphone",
        "customernumber",
        "phonenumber",
        "phone",
        "callernumber",
        "caller",
        "ani",
        "fromnumber",
        "from",
        "customeridentifier",
    ),
    "timeInQueue": ("timeinqueue", "timeinqueueseconds", "queuetime", "queuetimeseconds", "waittime", "waitseconds"),
    "timeInQueueMs": ("timeinqueuems", "timeinqueuemilliseconds", "queuetimems", "waittimems"),
    "timestamp": ("timestamp", "timestamputc", "time", "eventtime", "datetime", "date", "occurredat"),
    "abandonedAt": ("abandonedat",),
    "queue": ("queue", "queuename", "queueid"),
    "agentId": ("agentid", "agent", "agentidentifier", "agentuserid", "userid"),
    "targetPhoneNumber": (
        "targetphonenumber",
        "targetnumber",
        "target",
        "dialednumber",
        "dialnumber",
        "tonumber",
        "phonenumber",
        "customerphonenumber",
    ),
    "callId": ("callid", "conversationid"),
    "initiatedAt": ("initiatedat", "startedat", "createdat"),
    "mediaType": ("mediatype", "media", "channel", "channeltype"),
    "isOutbound": ("isoutbound", "outbound"),
    "createdAt": ("createdat", "created"),
    "closedAt": ("closedat", "closed", "completedat"),
    "agent": ("agent",),
    "agentName": ("agentname",),
    "agentEmail": ("agentemail",),
    "customerIdentifier": ("customeridentifier", "customerphonenumber", "customeremail", "customer"),
    "customerId": ("customerid", "customerprimaryid", "primaryid"),
    "primaryConversationId": ("primaryconversationid", "conversationid"),
    "completionCode": ("completioncode", "wrapupcode", "dispositioncode", "disposition"),
    "notes": ("notes", "note", "comment", "comments"),
    "result": ("result", "outcome"),
}


def _squash(name: str) -> str:
    return re.sub(r"[\s_\-.]", "", str(name)).lower()


class Fields:
    """The payload's top-level fields, found by any accepted spelling."""

    def __init__(self, payload: dict[str, Any]):
        self.payload = payload
        self.by_squashed: dict[str, tuple[str, Any]] = {}
        for key, value in payload.items():
            self.by_squashed.setdefault(_squash(key), (key, value))

    def get(self, canonical: str) -> tuple[str, Any] | tuple[None, None]:
        """(the key as sent, its value) for the first accepted spelling present and not null."""
        for spelling in ALIASES[canonical]:
            found = self.by_squashed.get(spelling)
            if found is not None and found[1] is not None and found[1] != "":
                return found
        return None, None


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (str, int, float)):
        return str(value).strip()
    return None


def _object_text(value: Any, *keys: str) -> str | None:
    """A plain value, or for an object such as {"id": ..., "name": ...} its first of keys."""
    if isinstance(value, dict):
        for key in keys:
            for actual, inner in value.items():
                if _squash(actual) == key and _text(inner):
                    return _text(inner)
        return None
    return _text(value)


_ISO_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)
_CLOCK = re.compile(r"^(?:(?P<h>\d+):)?(?P<m>\d{1,2}):(?P<s>\d{1,2}(?:\.\d+)?)$")


MAX_SECONDS = 100 * 366 * 86400


def parse_seconds(value: Any, *, milliseconds: bool = False) -> float | None:
    """A duration: a number of seconds (or ms for *Ms fields), "134", "02:14",
    "00:02:14", ISO 8601 "PT2M14S". None when it is none of these."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            if match := _CLOCK.match(text):
                return int(match["h"] or 0) * 3600 + int(match["m"]) * 60 + float(match["s"])
            match = _ISO_DURATION.match(text)
            if match and text.upper() not in {"P", "PT"}:
                parts = {k: float(v) for k, v in match.groupdict().items() if v}
                return parts.get("d", 0) * 86400 + parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0)
            return None
    else:
        return None
    seconds = number / 1000 if milliseconds else number
    # Not negative, not NaN, not "Infinity", and not beyond a century (a wait no timeline can write).
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_SECONDS:
        return None
    return seconds


def parse_time(value: Any) -> datetime | None:
    """A point in time, in UTC: ISO 8601 (any fraction digits, Z or offset; no
    offset means UTC), or a Unix time in seconds or milliseconds. None for
    anything else, and for a time UTC cannot hold (0001-01-01T00:00:00+01:00
    is in year 0)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            fraction = re.match(r"^(.*T\d{2}:\d{2}:\d{2})\.(\d+)(.*)$", text)
            if fraction:  # fromisoformat takes at most 6 fraction digits on every Python we run
                text = f"{fraction[1]}.{fraction[2][:6]}{fraction[3]}"
            try:
                parsed = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
                return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
            except (ValueError, OverflowError):
                return None
        value = number
    if isinstance(value, (int, float)):
        seconds = value / 1000 if value > 10**11 else value
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false", "1", "0", "yes", "no"}:
        return value.strip().lower() in {"true", "1", "yes"}
    if isinstance(value, int):
        return bool(value)
    return None


def _optional_text(fields: Fields, canonical: str, errors: dict) -> str:
    """The field's text, "" when absent (the contract requires none); an error
    when present but not readable as text."""
    key, value = fields.get(canonical)
    if key is None:
        return ""
    text = _object_text(value, "id", "number", "phonenumber", "name")
    if not text:
        errors[key] = ["Expected a string."]
        return ""
    return text


def _time_field(fields: Fields, errors: dict, *canonicals: str) -> datetime | None:
    for canonical in canonicals:
        key, value = fields.get(canonical)
        if key is None:
            continue
        parsed = parse_time(value)
        if parsed is None:
            errors[key] = ["Expected an ISO 8601 time such as 2022-03-08T07:39:47Z or a Unix time."]
            return None
        return parsed
    return None


def _base(payload: dict[str, Any]) -> dict[str, Any]:
    """The event as rules see it: the raw top-level fields, then the canonical ones."""
    return {key: value for key, value in payload.items() if isinstance(key, str)}


def _abandoned(payload: dict[str, Any]) -> Interpretation:
    fields = Fields(payload)
    errors: dict[str, list[str]] = {}
    phone = _optional_text(fields, "customerPhoneNumber", errors)
    seconds = None
    for canonical, in_ms in (("timeInQueueMs", True), ("timeInQueue", False)):
        key, value = fields.get(canonical)
        if key is None:
            continue
        seconds = parse_seconds(value, milliseconds=in_ms)
        if seconds is None:
            errors[key] = ['Expected a duration: seconds, "00:02:14" or "PT2M14S".']
        break
    when = _time_field(fields, errors, "abandonedAt", "timestamp")
    queue_key, queue_value = fields.get("queue")
    queue = _object_text(queue_value, "name", "queuename", "id") if queue_key else ""
    if queue_key and queue is None:
        errors[queue_key] = ["Expected a string."]
    if errors:
        raise Unreadable(errors)
    waited = format_duration(seconds) if seconds is not None else ""
    summary = (
        "Abandoned" + (f" in queue {queue}" if queue else " in the queue") + (f" after {waited}" if waited else "")
    )
    event_id = servicehook_event_id(EventSource.ABANDONED_CONVERSATION, payload)
    event = {
        **_base(payload),
        "customerPhoneNumber": phone,
        "phoneNumber": phone,
        "queue": queue or "",
        "timeInQueue": round(seconds) if seconds is not None else None,
        "timeInQueueText": waited,
        "timestamp": iso(when),
        "externalId": event_id,
    }
    return Interpretation(
        event_type="conversation.abandoned",
        summary=summary,
        event=event,
        lookups=[("phone", phone)],
        activity={
            "kind": "NOTE",
            "occurred_at": when,
            "source": "servicehooks",
            "header": "Abandoned conversation",
            "body": summary,
        },
    )


def _outbound(payload: dict[str, Any]) -> Interpretation:
    fields = Fields(payload)
    errors: dict[str, list[str]] = {}
    target = _optional_text(fields, "targetPhoneNumber", errors)
    agent_key, agent_value = fields.get("agentId")
    agent = _object_text(agent_value, "id", "agentid", "name") if agent_key else ""
    if agent_key and agent is None:
        errors[agent_key] = ["Expected a string."]
    when = _time_field(fields, errors, "timestamp", "initiatedAt")
    if errors:
        raise Unreadable(errors)
    summary = "Outbound call" + (f" to {target}" if target else "") + (f" started by agent {agent}" if agent else "")
    event_id = servicehook_event_id(EventSource.OUTBOUND_CALL, payload)
    stamp = iso(when)
    call = {
        "toNumber": target,
        "targetPhoneNumber": target,
        "agentId": agent or "",
        "timestamp": stamp,
        "contactNumber": target,
    }
    return Interpretation(
        event_type="call.outbound",
        summary=summary,
        event={**_base(payload), **call, "externalId": event_id},
        call=call,
        lookups=[("phone", target)],
        activity={
            "kind": "CALL",
            "occurred_at": when,
            "source": "servicehooks",
            "header": "Outbound call",
            "custom_header": "Outbound call (contact center)",
            "from_number": "",
            "to_number": target[:100],
            "duration_ms": 0,
            "start_time": when,
            "body": summary,
            "associated_user": (agent or "")[:200],
        },
    )


def _workitem(payload: dict[str, Any]) -> Interpretation:
    fields = Fields(payload)
    errors: dict[str, list[str]] = {}
    work_id = _optional_text(fields, "id", errors)
    created = _time_field(fields, errors, "createdAt")
    closed = _time_field(fields, errors, "closedAt", "timestamp")
    outbound_key, outbound_value = fields.get("isOutbound")
    is_outbound = _bool(outbound_value) if outbound_key else None
    if outbound_key and is_outbound is None:
        errors[outbound_key] = ["Expected true or false."]
    texts: dict[str, str] = {}
    for canonical in (
        "mediaType",
        "customerIdentifier",
        "customerId",
        "primaryConversationId",
        "completionCode",
        "notes",
        "result",
        "agentName",
        "agentEmail",
    ):
        key, value = fields.get(canonical)
        if key is None:
            texts[canonical] = ""
            continue
        text = _text(value) if canonical != "customerIdentifier" else _object_text(value, "phone", "email", "id")
        if text is None:
            errors[key] = ["Expected a string."]
        texts[canonical] = text or ""
    agent_key, agent_value = fields.get("agent")
    agent: dict[str, str] = {}
    if isinstance(agent_value, dict):
        agent = {str(k): _text(v) or "" for k, v in agent_value.items() if _text(v) is not None}
    elif agent_key and _text(agent_value):
        agent = {"name": _text(agent_value) or ""}
    elif agent_key:
        errors[agent_key] = ['Expected an object such as {"id": ..., "name": ...}.']
    if errors:
        raise Unreadable(errors)
    agent_name = agent.get("name") or texts["agentName"] or agent.get("email") or texts["agentEmail"] or agent.get("id")
    handled = ""
    if created and closed and closed >= created:
        handled = format_duration((closed - created).total_seconds())
    media = texts["mediaType"]
    head = f"{media} work item" if media else "Work item"
    if is_outbound is not None:
        head += " (outbound)" if is_outbound else " (inbound)"
    summary = f"{head} closed" + (f" by {agent_name}" if agent_name else "") + (f" after {handled}" if handled else "")
    outcome = " ".join(
        part for part in (texts["completionCode"], f"({texts['result']})" if texts["result"] else "") if part
    )
    if outcome:
        summary += f": {outcome}"
    body = summary + (f"\nNotes: {texts['notes']}" if texts["notes"] else "")
    identifier = texts["customerIdentifier"]
    lookups = [("customer_id", texts["customerId"])]
    if identifier:
        lookups += [("email", identifier)] if "@" in identifier else [("phone", identifier)]
        lookups.append(("customer_id", identifier))
    event = {
        **_base(payload),
        "id": work_id,
        "externalId": work_id,
        "mediaType": media,
        "isOutbound": is_outbound,
        "createdAt": iso(created),
        "closedAt": iso(closed),
        "agent": {**agent, **({"name": agent_name} if agent_name else {})},
        "customerIdentifier": identifier,
        "customerId": texts["customerId"],
        "primaryConversationId": texts["primaryConversationId"],
        "completionCode": texts["completionCode"],
        "notes": texts["notes"],
        "result": texts["result"],
        "handledText": handled,
    }
    return Interpretation(
        event_type="workitem.closed",
        summary=summary,
        event=event,
        lookups=lookups,
        activity={
            "kind": "NOTE",
            "occurred_at": closed,
            "source": "servicehooks",
            "external_id": f"workitem-{work_id}"[:200] if work_id else "",
            "header": "Work item closed",
            "body": body,
            "associated_user": (agent_name or "")[:200],
        },
    )


INTERPRETERS = {
    EventSource.ABANDONED_CONVERSATION: _abandoned,
    EventSource.OUTBOUND_CALL: _outbound,
    EventSource.WORKITEM_CLOSED: _workitem,
}


def servicehook_interpret(source: str, payload: dict[str, Any]) -> Interpretation:
    """Raises Unreadable for a payload whose fields the hub cannot read."""
    if not isinstance(payload, dict):
        raise Unreadable({"non_field_errors": ["Expected a JSON object."]})
    payload = _unwrapped(payload)
    meaning = INTERPRETERS[EventSource(source)](payload)
    if meaning.activity.get("occurred_at") is None:
        meaning.activity.pop("occurred_at")
        meaning.activity.pop("start_time", None)
    if not meaning.activity.get("external_id"):
        meaning.activity["external_id"] = _activity_external_id(source, payload, meaning)
    return meaning


def _activity_external_id(source: str, payload: dict[str, Any], meaning: Interpretation) -> str:
    event_id = meaning.event.get("externalId") or ""
    name = source.split(".", 1)[1]
    return f"{name}-{event_id}"[:200] if event_id else f"{name}-{content_hash(payload)[:32]}"


def _unwrapped(payload: dict[str, Any]) -> dict[str, Any]:
    examples = payload.get("examples")
    if set(payload) == {"examples"} and isinstance(examples, list) and len(examples) == 1:
        # The contract prints WorkItemClosed as '"examples": [ {...} ]' (a schema
        # excerpt); a sender copying it verbatim means the one object inside.
        return examples[0] if isinstance(examples[0], dict) else payload
    return payload


def servicehook_event_id(source: str, payload: dict[str, Any]) -> str:
    """The notification's own id ("" when it has none): ``id``, else the call's or conversation's id."""
    fields = Fields(payload)
    if source == EventSource.WORKITEM_CLOSED:
        return _object_text(fields.get("id")[1], "id", "number", "phonenumber", "name") or ""
    second = "callId" if source == EventSource.OUTBOUND_CALL else "conversationId"
    return _text(fields.get("id")[1]) or _text(fields.get(second)[1]) or ""


def servicehook_interpreter(source: str) -> Callable[[Any], Interpretation]:
    """interpret() for the registry: :func:`servicehook_interpret` of one source."""

    def interpret(payload: Any) -> Interpretation:
        return servicehook_interpret(source, payload)

    return interpret


def servicehook_identify(source: str) -> Callable[[Any], str]:
    """identify() for the registry: the event's id as its key ("" when it has
    none: the content hash is used). Any JSON value is accepted."""

    def identify(payload: Any) -> str:
        if not isinstance(payload, dict):
            return ""
        event_id = servicehook_event_id(source, _unwrapped(payload))
        if not event_id:
            return ""
        key = f"{source}:id:{event_id}"
        # A very long id is hashed rather than cut, so two ids never share a key.
        return key if len(key) <= 200 else f"{source}:idsha256:{hashlib.sha256(event_id.encode()).hexdigest()}"

    return identify


for _source, _event_type in (
    (EventSource.ABANDONED_CONVERSATION, "conversation.abandoned"),
    (EventSource.OUTBOUND_CALL, "call.outbound"),
    (EventSource.WORKITEM_CLOSED, "workitem.closed"),
):
    register_interpreter(
        _source,
        event_type=_event_type,
        interpret=servicehook_interpreter(_source),
        identify=servicehook_identify(_source),
    )


# ---------------------------------------------------------------- the endpoint


def _canonical_event_type(event_type: str) -> str:
    return EVENT_TYPE_SPELLINGS.get(_squash(event_type), event_type.lower())


class ServiceHookApiKeyAuthentication(BaseAuthentication):
    """Documentation only: the view checks the x-api-key header itself (hub.selectors)."""

    def authenticate(self, request):  # pragma: no cover - never called, see ServiceHookApi.dispatch
        return None


class ServiceHookApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = ServiceHookApiKeyAuthentication
    name = "serviceHookApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "x-api-key",
            "description": "An active servicehooks key of the brand.",
        }


@extend_schema_view(
    post=extend_schema(
        operation_id="servicehook_event",
        tags=["Service hooks"],
        summary="A contact-center notification: abandoned conversation, outbound call, work item closed",
        description="Field names are matched loosely (case, `_`, `-`, spaces ignored; the spellings in "
        "docs/inbound-events.md). Extra fields are kept and never rejected; no field is required. Stored first, "
        "as received; then matched by phone number / customer id and put on the timeline. An event naming no "
        "customer is `unmatched`; one whose fields cannot be read is kept as `invalid` (202, with the reason). "
        "A retry (same id, or same content) is stored once.",
        parameters=[
            OpenApiParameter("brand_slug", OpenApiTypes.STR, OpenApiParameter.PATH, description="The brand's slug."),
            OpenApiParameter(
                "event_type",
                OpenApiTypes.STR,
                OpenApiParameter.PATH,
                enum=list(EVENT_SOURCES),
                description="abandoned-conversation, outbound-call or workitem-closed.",
            ),
        ],
        request=inline_serializer(
            "ServiceHookEvent",
            {
                "id": serializers.CharField(required=False),
                "customerPhoneNumber": serializers.CharField(required=False, help_text="abandoned-conversation"),
                "timeInQueue": serializers.CharField(required=False, help_text="seconds, 00:02:14 or PT2M14S"),
                "timestamp": serializers.CharField(required=False, help_text="ISO 8601 or Unix time"),
                "queue": serializers.CharField(required=False),
                "agentID": serializers.CharField(required=False, help_text="outbound-call"),
                "targetPhoneNumber": serializers.CharField(required=False, help_text="outbound-call"),
                "mediaType": serializers.CharField(required=False, help_text="workitem-closed"),
                "isOutbound": serializers.BooleanField(required=False),
                "createdAt": serializers.CharField(required=False),
                "closedAt": serializers.CharField(required=False),
                "agent": serializers.DictField(required=False),
                "customerIdentifier": serializers.CharField(required=False),
                "customerId": serializers.CharField(required=False),
                "primaryConversationId": serializers.CharField(required=False),
                "completionCode": serializers.CharField(required=False),
                "notes": serializers.CharField(required=False),
                "result": serializers.CharField(required=False),
            },
        ),
        responses=openapi_event_responses(
            {
                401: OpenApiResponse(openapi_error("InboundEventError"), description="No x-api-key header."),
                403: OpenApiResponse(openapi_error("InboundEventError"), description="Invalid API key."),
                404: OpenApiResponse(openapi_error("InboundEventError"), description="No such brand or event type."),
            }
        ),
    )
)
class ServiceHookApi(EventAcceptApi):
    """Contact-center service hooks (contract: contact-center-service-hooks.txt):
    x-api-key auth, then the shared accept path."""

    authentication_classes = [ServiceHookApiKeyAuthentication]

    def endpoint_name(self, **kwargs: str) -> str:
        return f"servicehooks.{_canonical_event_type(kwargs['event_type'])}"

    def event_source(self, **kwargs: str) -> str:
        source = EVENT_SOURCES.get(_canonical_event_type(kwargs["event_type"]))
        if source is None:
            raise NotFound(f"Unknown event type; one of {', '.join(EVENT_SOURCES)}.", code="unknown_event_type")
        return source

    def key_check(self, call: InboundCall, request: HttpRequest, brand_slug: str) -> HttpResponse | None:
        key = request.headers.get("x-api-key", "")
        if not key:
            return error_response(NotAuthenticated("No x-api-key header provided."))
        auth = call.authenticate(brand_slug=brand_slug, integration=Integration.SERVICEHOOKS, secret=key.strip())
        if auth.status == 404:
            return error_response(NotFound("No such brand."))
        if auth.status:
            return error_response(Forbidden("Invalid API key."))
        return None


urlpatterns = [
    re_path(
        r"^servicehooks/(?P<brand_slug>[-a-zA-Z0-9_]+)/(?P<event_type>[^/]+)(?:/+)?$",
        ServiceHookApi.as_view(),
        name="servicehooks-event",
    ),
]
