"""M8Com "Automatic Call Logging": ``POST /hooks/m8com/<brand-slug>/calllog``.

M8Com posts one JSON object per finished call (fromNumber, toNumber, duration
in ms, startTime in Unix ms, callType, body, userId). The hub stores it, finds
the CRM contact, puts a CALL activity on the timeline (so the next M8Com number
lookup lists it among the recent calls) and emits ``call.logged``.

Which number is the CRM contact: the contract says callType "should be seen as
if it's from the CRM contact's perspective. So if someone from M8Com calls a
user in your CRM it will be logged as an inbound call to that CRM user." An
``Inbound`` call was received by the contact, so the contact is the callee,
``toNumber``; an ``Outbound`` call was made by the contact, so the contact is
the caller, ``fromNumber``. When that number matches no customer, the other
number is tried too (M8Com also sends an M8Com user id there when a user has
no real number, which matches nothing), so a deployment that reads callType
the other way round still finds its customers.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import re_path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers

from .common import EventAcceptApi, InboundCall, openapi_error, openapi_event_responses
from .m8com import M8ComBearerAuthentication, m8com_key_check
from .models import EventSource
from .registry import Interpretation, Unreadable, register_interpreter
from .services import format_duration, iso, millis_to_datetime

logger = logging.getLogger(__name__)

CALL_TYPES = {"inbound": "Inbound", "outbound": "Outbound"}
REQUIRED = "This field is required."
MAX_MILLIS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last time a datetime can hold


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def calllog_validate(payload: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """M8Com call log request body: every required field present and of its
    type; unknown fields ignored ("Adding is not breaking"). Returns (clean, errors)."""
    if not isinstance(payload, dict):
        return {}, {"non_field_errors": ["Expected a JSON object."]}
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    for name in ("fromNumber", "toNumber"):
        value = payload.get(name)
        if value is None:
            errors[name] = [REQUIRED]
        elif not isinstance(value, str) or not value.strip():
            errors[name] = ["Expected a non-empty string with a phone number or user id."]
        elif len(value) > 100:
            errors[name] = ["At most 100 characters."]
        else:
            clean[name] = value.strip()
    for name, what in (("duration", "the call length in milliseconds"), ("startTime", "a Unix time in milliseconds")):
        value = payload.get(name)
        if value is None:
            errors[name] = [REQUIRED]
        elif not _is_number(value) or value < 0 or value > MAX_MILLIS:
            errors[name] = [f"Expected a non-negative number: {what}."]
        else:
            clean[name] = int(value)
    call_type = payload.get("callType")
    if call_type is None:
        errors["callType"] = [REQUIRED]
    elif not isinstance(call_type, str) or call_type.strip().lower() not in CALL_TYPES:
        errors["callType"] = ['Expected "Inbound" or "Outbound".']
    else:
        clean["callType"] = CALL_TYPES[call_type.strip().lower()]
    body = payload.get("body")
    if body is None:
        errors["body"] = [REQUIRED]
    elif not isinstance(body, str):
        errors["body"] = ["Expected a string."]
    else:
        clean["body"] = body
    # userId is "from v2": optional, so that v1 integrations keep working.
    user_id = payload.get("userId")
    if user_id is not None and not isinstance(user_id, (str, int)):
        errors["userId"] = ["Expected a string."]
    else:
        clean["userId"] = "" if user_id is None else str(user_id)
    return clean, errors


IDENTITY = ("fromNumber", "toNumber", "startTime", "callType")


def calllog_idempotency_key(clean: dict[str, Any]) -> str:
    """One call is one (fromNumber, toNumber, startTime, callType): a retried post is the same call."""
    identity = "|".join(str(clean[name]) for name in IDENTITY)
    return "m8com.calllog:" + hashlib.sha256(identity.encode()).hexdigest()


def calllog_identify(payload: Any) -> str:
    """The call's key when its four identifying fields can be read; "" otherwise
    (the content hash is the key then). Any JSON value is accepted."""
    clean, errors = calllog_validate(payload)
    return "" if any(name in errors for name in (*IDENTITY, "non_field_errors")) else calllog_idempotency_key(clean)


def calllog_interpret(payload: Any) -> Interpretation:
    clean, errors = calllog_validate(payload)
    if errors:
        raise Unreadable(errors)
    contact, other = (
        (clean["toNumber"], clean["fromNumber"])
        if clean["callType"] == "Inbound"
        else (clean["fromNumber"], clean["toNumber"])
    )
    started = millis_to_datetime(clean["startTime"])
    length = format_duration(clean["duration"] / 1000)
    summary = f"{clean['callType']} call {clean['fromNumber']} → {clean['toNumber']}, {length}"
    call = {
        "fromNumber": clean["fromNumber"],
        "toNumber": clean["toNumber"],
        "duration": clean["duration"],
        "startTime": clean["startTime"],
        "callType": clean["callType"],
        "body": clean["body"],
        "userId": clean["userId"],
        "contactNumber": contact,
        "durationText": length,
        "startedAt": iso(started),
    }
    key = calllog_idempotency_key(clean)
    return Interpretation(
        event_type="call.logged",
        summary=summary,
        event={**call},
        call=call,
        lookups=[("phone", contact), ("phone", other)],
        create_number=contact,
        activity={
            "kind": "CALL",
            "occurred_at": started,
            "source": "m8com",
            "external_id": "m8com-call-" + key.rsplit(":", 1)[1][:32],
            "header": f"{clean['callType']} call",
            "from_number": clean["fromNumber"],
            "to_number": clean["toNumber"],
            "duration_ms": clean["duration"],
            "start_time": started,
            "body": clean["body"],
            "associated_user": clean["userId"][:200],
        },
    )


register_interpreter(
    EventSource.M8COM_CALLLOG, event_type="call.logged", interpret=calllog_interpret, identify=calllog_identify
)


# ---------------------------------------------------------------- the endpoint


@extend_schema_view(
    post=extend_schema(
        operation_id="m8com_call_log",
        tags=["M8Com"],
        summary="Log a finished call on the CRM contact's timeline",
        description="Stored first, as received; then matched: `Inbound` calls by `toNumber`, `Outbound` calls by "
        "`fromNumber` (the contract's callType is from the CRM contact's perspective), then the other number. "
        "Unknown fields are ignored. A call log whose fields cannot be read is kept as `invalid` (202, with the "
        "reason). A retried post of the same call (fromNumber, toNumber, startTime, callType) adds nothing.",
        parameters=[
            OpenApiParameter("brand_slug", OpenApiTypes.STR, OpenApiParameter.PATH, description="The brand's slug.")
        ],
        request=inline_serializer(
            "M8ComCallLog",
            {
                "fromNumber": serializers.CharField(help_text="The caller's number."),
                "toNumber": serializers.CharField(help_text="The number that was dialed."),
                "duration": serializers.IntegerField(min_value=0, help_text="Milliseconds."),
                "startTime": serializers.IntegerField(min_value=0, help_text="Unix time in milliseconds."),
                "callType": serializers.ChoiceField(["Inbound", "Outbound"]),
                "body": serializers.CharField(allow_blank=True),
                "userId": serializers.CharField(required=False, help_text="From v2."),
            },
        ),
        responses=openapi_event_responses(
            {
                401: OpenApiResponse(
                    inline_serializer("M8ComCallLogNoHeader", {"message": serializers.CharField()}),
                    description='{"message": "No authorization header provided"}',
                ),
                403: OpenApiResponse(
                    inline_serializer("M8ComCallLogInvalidSecret", {"message": serializers.CharField()}),
                    description='{"message": "Invalid secret"}',
                ),
                404: OpenApiResponse(openapi_error("InboundEventError"), description="No such brand."),
            }
        ),
    )
)
class M8ComCallLogApi(EventAcceptApi):
    """M8Com Automatic Call Logging (contract: m8com-insights-webhook.txt). Auth
    as the number lookup: 401 without an Authorization header, 403 for a wrong
    secret (the contract's exact bodies)."""

    authentication_classes = [M8ComBearerAuthentication]

    def endpoint_name(self, **kwargs: str) -> str:
        return "m8com.calllog"

    def event_source(self, **kwargs: str) -> str:
        return EventSource.M8COM_CALLLOG

    def key_check(self, call: InboundCall, request: HttpRequest, brand_slug: str) -> HttpResponse | None:
        return m8com_key_check(call, request, brand_slug)


urlpatterns = [
    re_path(
        r"^m8com/(?P<brand_slug>[-a-zA-Z0-9_]+)/calllog(?:/+)?$",
        M8ComCallLogApi.as_view(),
        name="m8com-calllog",
    )
]
