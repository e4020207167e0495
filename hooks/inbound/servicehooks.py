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
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import UTC, datetime
from typing import Any

from django.urls import re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.views import APIView

from hub.models import Integration

from .common import InboundCall, error_response, json_response
from .models import EventSource
from .services import (
    BodyError,
    Interpretation,
    content_hash,
    event_response_body,
    format_duration,
    inbound_event_accept,
    iso,
    json_body_read,
    openapi_error,
    openapi_event_accepted,
)

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


class FieldErrors(ValueError):
    def __init__(self, fields: dict[str, list[str]]):
        super().__init__(str(fields))
        self.fields = fields


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
    if number < 0 or number != number:
        return None
    return number / 1000 if milliseconds else number


def parse_time(value: Any) -> datetime | None:
    """A point in time: ISO 8601 (any fraction digits, Z or offset; no offset
    means UTC), or a Unix time in seconds or milliseconds."""
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
            except ValueError:
                return None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
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


def _required_text(fields: Fields, canonical: str, errors: dict, *, what: str) -> str:
    key, value = fields.get(canonical)
    if key is None:
        spellings = ", ".join(ALIASES[canonical][:4])
        errors[canonical] = [f"This field is required ({what}); accepted spellings include {spellings}."]
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
    phone = _required_text(fields, "customerPhoneNumber", errors, what="the customer's phone number")
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
        raise FieldErrors(errors)
    waited = format_duration(seconds) if seconds is not None else ""
    summary = (
        "Abandoned" + (f" in queue {queue}" if queue else " in the queue") + (f" after {waited}" if waited else "")
    )
    event_id = _text(fields.get("id")[1]) or _text(fields.get("conversationId")[1]) or ""
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
    target = _required_text(fields, "targetPhoneNumber", errors, what="the dialed number")
    agent_key, agent_value = fields.get("agentId")
    agent = _object_text(agent_value, "id", "agentid", "name") if agent_key else ""
    if agent_key and agent is None:
        errors[agent_key] = ["Expected a string."]
    when = _time_field(fields, errors, "timestamp", "initiatedAt")
    if errors:
        raise FieldErrors(errors)
    summary = f"Outbound call to {target}" + (f" started by agent {agent}" if agent else "")
    event_id = _text(fields.get("id")[1]) or _text(fields.get("callId")[1]) or ""
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
    work_id = _required_text(fields, "id", errors, what="the work item id")
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
        raise FieldErrors(errors)
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
            "external_id": f"workitem-{work_id}"[:200],
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
    """Raises FieldErrors for a payload the hub cannot use."""
    if not isinstance(payload, dict):
        raise FieldErrors({"non_field_errors": ["Expected a JSON object."]})
    examples = payload.get("examples")
    if set(payload) == {"examples"} and isinstance(examples, list) and len(examples) == 1:
        # The contract prints WorkItemClosed as '"examples": [ {...} ]' (a schema
        # excerpt); a sender copying it verbatim means the one object inside.
        payload = examples[0] if isinstance(examples[0], dict) else payload
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


def servicehook_idempotency_key(source: str, payload: dict[str, Any], meaning: Interpretation) -> str:
    """The event's own id when it has one, else a hash of its content."""
    event_id = str(meaning.event.get("externalId") or "")
    if event_id:
        key = f"{source}:id:{event_id}"
        # A very long id is hashed rather than cut, so two ids never share a key.
        return key if len(key) <= 200 else f"{source}:idsha256:{hashlib.sha256(event_id.encode()).hexdigest()}"
    return f"{source}:sha256:{content_hash(payload)}"


# ---------------------------------------------------------------- the endpoint


def servicehook_view(request, brand_slug: str, event_type: str):
    """One service hook notification: x-api-key auth, stored raw, then processed."""
    canonical = EVENT_TYPE_SPELLINGS.get(_squash(event_type), event_type.lower())
    call = InboundCall(request, f"servicehooks.{canonical}"[:60])
    try:
        return _servicehook(call, request, brand_slug, canonical)
    except Exception:  # noqa: BLE001 - a JSON 500, never an HTML page
        logger.exception("Service hook failed")
        return call.finish(error_response(500, "server_error", "An unexpected error occurred."))


def _servicehook(call: InboundCall, request, brand_slug: str, canonical: str):
    if request.method != "POST":
        response = error_response(405, "method_not_allowed", "Use POST.")
        response["Allow"] = "POST"
        return call.finish(response)
    source = EVENT_SOURCES.get(canonical)
    if source is None:
        return call.finish(
            error_response(404, "unknown_event_type", f"Unknown event type; one of {', '.join(EVENT_SOURCES)}.")
        )
    key = request.headers.get("x-api-key", "")
    if not key:
        return call.finish(error_response(401, "not_authenticated", "No x-api-key header provided."))
    auth = call.authenticate(brand_slug=brand_slug, integration=Integration.SERVICEHOOKS, secret=key.strip())
    if auth.status == 404:
        return call.finish(error_response(404, "not_found", "No such brand."))
    if auth.status:
        return call.finish(error_response(403, "forbidden", "Invalid API key."))
    assert auth.brand is not None  # status 0: credential_authenticate found the brand
    try:
        payload, raw = json_body_read(request)
    except BodyError as exc:
        return call.finish(error_response(exc.status, exc.code, exc.message, exc.fields))
    text = raw.decode("utf-8", "replace")
    try:
        meaning = servicehook_interpret(source, payload)
    except FieldErrors as exc:
        return call.finish(
            error_response(400, "invalid", "The event has invalid fields.", exc.fields), request_body=text
        )
    event, duplicate = inbound_event_accept(
        brand=auth.brand,
        source=source,
        payload=payload,
        idempotency_key=servicehook_idempotency_key(source, payload, meaning),
    )
    return call.finish(
        json_response(*event_response_body(event, duplicate)),
        customer_id=event.customer_id,
        note=f"event {event.pk} {event.state}{' (duplicate)' if duplicate else ''}",
        request_body=text,
    )


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


class ServiceHookApi(APIView):
    """Contact-center service hooks (contract: contact-center-service-hooks.txt)."""

    authentication_classes = [ServiceHookApiKeyAuthentication]
    permission_classes: list = []
    http_method_names = ["post"]

    @extend_schema(
        operation_id="servicehook_event",
        tags=["Service hooks"],
        summary="A contact-center notification: abandoned conversation, outbound call, work item closed",
        description="Field names are matched loosely (case, `_`, `-`, spaces ignored; the spellings in "
        "docs/inbound-events.md). Extra fields are kept and never rejected. Stored first, then matched by "
        "phone number / customer id and put on the timeline. A retry (same id, or same content) is stored once.",
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
        responses={
            200: OpenApiResponse(openapi_event_accepted(), description="Stored and processed (or a retry)."),
            202: OpenApiResponse(openapi_event_accepted(), description="Stored; processing failed and can be redone."),
            400: OpenApiResponse(openapi_error("InboundEventError"), description="Invalid fields (error.fields)."),
            401: OpenApiResponse(openapi_error("InboundEventError"), description="No x-api-key header."),
            403: OpenApiResponse(openapi_error("InboundEventError"), description="Invalid API key."),
            404: OpenApiResponse(openapi_error("InboundEventError"), description="No such brand or event type."),
            413: OpenApiResponse(openapi_error("InboundEventError"), description="Body over HUB_MAX_BODY_BYTES."),
            415: OpenApiResponse(openapi_error("InboundEventError"), description="Not application/json."),
            500: OpenApiResponse(openapi_error("InboundEventError"), description="Unexpected failure."),
        },
    )
    def post(self, request, brand_slug: str, event_type: str):
        return servicehook_view(request, brand_slug, event_type)

    def dispatch(self, request, *args, **kwargs):
        # The view reads the body itself; DRF's request wrapping is skipped
        # (the class exists for the schema).
        return servicehook_view(request, kwargs["brand_slug"], kwargs["event_type"])


urlpatterns = [
    re_path(
        r"^servicehooks/(?P<brand_slug>[-a-zA-Z0-9_]+)/(?P<event_type>[^/]+)(?:/+)?$",
        csrf_exempt(ServiceHookApi.as_view()),
        name="servicehooks-event",
    ),
]
