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

from django.urls import re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.views import APIView

from hub.models import Integration

from .common import InboundCall, error_response, json_response
from .m8com import M8ComBearerAuthentication
from .models import EventSource
from .services import (
    BodyError,
    Interpretation,
    event_response_body,
    format_duration,
    inbound_event_accept,
    iso,
    json_body_read,
    millis_to_datetime,
    openapi_error,
    openapi_event_accepted,
)

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


def calllog_idempotency_key(clean: dict[str, Any]) -> str:
    """One call is one (fromNumber, toNumber, startTime, callType): a retried post is the same call."""
    identity = "|".join(str(clean[name]) for name in ("fromNumber", "toNumber", "startTime", "callType"))
    return "m8com.calllog:" + hashlib.sha256(identity.encode()).hexdigest()


def calllog_interpret(payload: dict[str, Any]) -> Interpretation:
    clean, errors = calllog_validate(payload)
    if errors:
        raise ValueError(f"Stored call log is not valid: {errors}")
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


# ---------------------------------------------------------------- the endpoint

M8COM_NO_HEADER = {"message": "No authorization header provided"}
M8COM_INVALID_SECRET = {"message": "Invalid secret"}


def calllog_view(request, brand_slug: str):
    """M8Com Automatic Call Logging. Auth as the number lookup: 401 without an
    Authorization header, 403 for a wrong secret (the contract's exact bodies)."""
    call = InboundCall(request, "m8com.calllog")
    try:
        return _calllog(call, request, brand_slug)
    except Exception:  # noqa: BLE001 - a JSON 500, never an HTML page
        logger.exception("M8Com call log failed")
        return call.finish(error_response(500, "server_error", "An unexpected error occurred."))


def _calllog(call: InboundCall, request, brand_slug: str):
    if request.method != "POST":
        response = error_response(405, "method_not_allowed", "Use POST.")
        response["Allow"] = "POST"
        return call.finish(response)
    header = request.headers.get("Authorization", "")
    if not header:
        return call.finish(json_response(M8COM_NO_HEADER, 401))
    scheme, _, secret = header.partition(" ")
    auth = call.authenticate(
        brand_slug=brand_slug,
        integration=Integration.M8COM,
        secret=secret.strip() if scheme.lower() == "bearer" else "\x00invalid",
    )
    if auth.status == 404:
        return call.finish(error_response(404, "not_found", "No such brand."))
    if auth.status:
        return call.finish(json_response(M8COM_INVALID_SECRET, 403))
    assert auth.brand is not None  # status 0: credential_authenticate found the brand
    try:
        payload, raw = json_body_read(request)
    except BodyError as exc:
        return call.finish(error_response(exc.status, exc.code, exc.message, exc.fields))
    text = raw.decode("utf-8", "replace")
    clean, errors = calllog_validate(payload)
    if errors:
        return call.finish(
            error_response(400, "invalid", "The call log has invalid fields.", errors), request_body=text
        )
    event, duplicate = inbound_event_accept(
        brand=auth.brand,
        source=EventSource.M8COM_CALLLOG,
        payload=payload,
        idempotency_key=calllog_idempotency_key(clean),
    )
    return call.finish(
        json_response(*event_response_body(event, duplicate)),
        customer_id=event.customer_id,
        note=f"event {event.pk} {event.state}{' (duplicate)' if duplicate else ''}",
        request_body=text,
    )


class M8ComCallLogApi(APIView):
    """M8Com Automatic Call Logging (contract: m8com-insights-webhook.txt)."""

    authentication_classes = [M8ComBearerAuthentication]
    permission_classes: list = []
    http_method_names = ["post"]

    @extend_schema(
        operation_id="m8com_call_log",
        tags=["M8Com"],
        summary="Log a finished call on the CRM contact's timeline",
        description="Stored first, then matched: `Inbound` calls by `toNumber`, `Outbound` calls by `fromNumber` "
        "(the contract's callType is from the CRM contact's perspective), then the other number. Unknown fields "
        "are ignored. A retried post of the same call (fromNumber, toNumber, startTime, callType) adds nothing.",
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
        responses={
            200: OpenApiResponse(openapi_event_accepted(), description="Stored and processed (or a retry)."),
            202: OpenApiResponse(openapi_event_accepted(), description="Stored; processing failed and can be redone."),
            400: OpenApiResponse(openapi_error("InboundEventError"), description="Invalid fields (error.fields)."),
            401: OpenApiResponse(
                inline_serializer("M8ComCallLogNoHeader", {"message": serializers.CharField()}),
                description='{"message": "No authorization header provided"}',
            ),
            403: OpenApiResponse(
                inline_serializer("M8ComCallLogInvalidSecret", {"message": serializers.CharField()}),
                description='{"message": "Invalid secret"}',
            ),
            404: OpenApiResponse(openapi_error("InboundEventError"), description="No such brand."),
            413: OpenApiResponse(openapi_error("InboundEventError"), description="Body over HUB_MAX_BODY_BYTES."),
            415: OpenApiResponse(openapi_error("InboundEventError"), description="Not application/json."),
            500: OpenApiResponse(openapi_error("InboundEventError"), description="Unexpected failure."),
        },
    )
    def post(self, request, brand_slug: str):
        return calllog_view(request, brand_slug)

    def dispatch(self, request, *args, **kwargs):
        # The view reads the body itself; DRF's request wrapping is skipped
        # (the class exists for the schema).
        return calllog_view(request, kwargs["brand_slug"])


urlpatterns = [
    re_path(
        r"^m8com/(?P<brand_slug>[-a-zA-Z0-9_]+)/calllog(?:/+)?$",
        csrf_exempt(M8ComCallLogApi.as_view()),
        name="m8com-calllog",
    )
]
