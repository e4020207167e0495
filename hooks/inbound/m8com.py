"""M8Com "Number lookup": ``GET /hooks/m8com/<brand-slug>/lookup``.

M8Com calls this on every incoming call, dialer search and call-log display,
and gives up after 3 seconds. Auth is ``Authorization: Bearer <secret>``; the
contract's example code fixes the two error bodies (401 ``{"message": "No
authorization header provided"}``, 403 ``{"message": "Invalid secret"}``).
``fromNumber`` is required, ``toNumber`` optional; the contact is looked up by
``fromNumber``, then by ``toNumber``, under the brand's matching policy
(customers.matching: the brand's own lines are never looked up, so the other
number is the customer). A value that is no phone number (M8Com sends user ids
for users without a real number) or an extension is a normal miss. Choices
where the contract is silent (docs/m8com-lookup.md): a miss is 404
``{"message": "No contact found"}``; several customers with the number: the
most recently updated one.

The stored contact (customers.documents.m8com_contact) gets the brand's
templated links per request (``createActivityUrls``, and ``moreInfoUrl`` when
the customer has none), rendered by the hub's template runtime
(hub.templating: sandbox, budget on work, values percent-encoded for their
part of the URL); the links of one answer share one time budget, and a link
that fails or runs over it is left out of that answer and logged, never a
500. The finished answer is cached under the brand's generation
(hooks.inbound.lookup_cache).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse
from django.urls import re_path
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.views import APIView

from customers.matching import MOST_RECENT, phone_for_lookup, phone_match, phone_policy
from customers.selectors import M8COM_COLUMNS
from hooks.sources.preview import m8com_answer_register
from hooks.sources.services import lookup_upstream
from hooks.sources.tags import key_for
from hub import metrics
from hub.exceptions import MethodNotAllowed, NotFound, ValidationFailed
from hub.models import LINK_SAMPLE_CONTEXT, Brand, Integration
from hub.templating import LINK_KIND, TemplateRenderError, clock, link_budget, template_render

from .common import InboundCall, error_response, json_response
from .lookup_cache import lookup_cache
from .omnidesk import ErrorDetailSerializer, ErrorSerializer, phone_param

logger = logging.getLogger(__name__)

ENDPOINT = "m8com.lookup"
metrics.endpoints_declare(ENDPOINT)
NO_HEADER = {"message": "No authorization header provided"}
INVALID_SECRET = {"message": "Invalid secret"}
NO_CONTACT = {"message": "No contact found"}
MAX_NUMBER_LENGTH = 64
MAX_URL_LENGTH = 2000


# The template context's customer keys (_template_context); none is also an
# attribute of dict, so Jinja's ``customer.<key>`` reads the key.
CONTEXT_KEYS = frozenset((*M8COM_COLUMNS, "name", "company", "email", "emails", "phone", "phones"))
if any(hasattr(dict, key) for key in CONTEXT_KEYS):
    raise RuntimeError("A template context key shadows a dict attribute: Jinja would read the attribute.")
if CONTEXT_KEYS != set(LINK_SAMPLE_CONTEXT["customer"]):
    raise RuntimeError("hub.models.LINK_SAMPLE_CONTEXT must name the keys templates see at lookup time.")


class _Links:
    """The link templates of one answer: one shared time budget (M8Com gives up at 3 s)."""

    def __init__(self, brand: Brand, context: dict[str, Any]):
        self.brand = brand
        self.context = context
        self.budget = link_budget()
        self.deadline = clock() + self.budget.seconds

    def render(self, name: str, source: str) -> str:
        """The link for this customer; "" when it fails, runs over the budget or is too long (logged)."""
        try:
            url = template_render(
                kind=LINK_KIND,
                source=source,
                context=self.context,
                budget=self.budget,
                seconds=max(self.deadline - clock(), 0.0),
            ).strip()
        except TemplateRenderError as exc:
            logger.warning("M8Com lookup: brand %s: link %r left out: %s", self.brand.slug, name, exc.reason)
            return ""
        if len(url) > MAX_URL_LENGTH:
            logger.warning(
                "M8Com lookup: brand %s: link %r left out: longer than %d characters",
                self.brand.slug,
                name,
                MAX_URL_LENGTH,
            )
            return ""
        return url


@functools.lru_cache(maxsize=16_384)
def phone_or_none(value: str, region: str) -> str | None:
    """E.164, or None for a value that is no phone number (an M8Com user id) or
    an internal extension (customers.matching). Cached: M8Com looks the same
    numbers up again and again, and parsing is the costliest step of a cached lookup."""
    return phone_for_lookup(phone_param((value or "")[:MAX_NUMBER_LENGTH]), region)


def _template_context(row: tuple, contact: dict[str, Any]) -> dict[str, Any]:
    customer = dict(zip(M8COM_COLUMNS, row, strict=False))
    emails = [entry["id"] for entry in contact.get("emails", ())]
    phones = [entry["id"] for entry in contact.get("phoneNumbers", ())]
    customer.update(
        name=contact["displayName"],
        company=customer["company_name"],
        email=emails[0] if emails else "",
        emails=emails,
        phone=phones[0] if phones else "",
        phones=phones,
    )
    return {"customer": customer}


def m8com_contact_body(brand: Brand, row: tuple) -> bytes:
    """M8Com: the stored contact with the brand's templated links added."""
    document = row[-1]
    links = [
        item
        for item in (brand.create_activity_urls or [])
        if isinstance(item, dict) and item.get("name") and item.get("url")
    ]
    if not links and not brand.more_info_url_template:
        return document.encode()
    contact = orjson.loads(document)
    renderer = _Links(brand, _template_context(row, contact))
    if brand.more_info_url_template and "moreInfoUrl" not in contact:
        if url := renderer.render("moreInfoUrl", brand.more_info_url_template):
            contact["moreInfoUrl"] = url
    rendered = []
    for item in links:
        if url := renderer.render(str(item["name"]), str(item["url"])):
            rendered.append({"name": str(item["name"]), "url": url})
    if rendered:
        contact["createActivityUrls"] = rendered
    return orjson.dumps(contact)


def m8com_contact_find(
    brand: Brand, numbers: tuple[tuple[str, str | None], ...]
) -> tuple[bytes | None, int | None, str]:
    """(body or None, customer pk, log note) for the normalized (name, number)
    pairs, fromNumber first. A lookup does not say the call's direction: the
    brand's own lines are never looked up, so the other number is the customer;
    neither a known line: fromNumber, then toNumber (customers.matching)."""
    policy = phone_policy(brand)
    own = [name for name, number in numbers if number is not None and policy.is_own_line(number)]
    skipped = f"own line: {', '.join(own)}" if own else ""
    found = phone_match(brand=brand, numbers=[number for _, number in numbers if number is not None], columns="m8com")
    if found is None:
        return None, None, skipped
    name = next(name for name, number in numbers if number == found.number)
    note = "; ".join(part for part in (found.how(name), found.several(MOST_RECENT), skipped) if part)
    return m8com_contact_body(brand, found.row), found.row[0], note


def upstream_keys(brand: Brand, numbers: tuple[tuple[str, str | None], ...]) -> list:
    """What the brand's lookup sources are asked on a miss: the numbers that may
    be the customer's (never one of the brand's own lines), fromNumber first."""
    policy = phone_policy(brand)
    return [key_for("telephone", number) for _, number in numbers if number and not policy.is_own_line(number)]


def m8com_key_check(call: InboundCall, request: HttpRequest, brand_slug: str) -> HttpResponse | None:
    """M8Com's Bearer secret, for the lookup and the call log alike: None when
    accepted, else the contract's 401 / 403 body (404 for an unknown brand)."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        return json_response(NO_HEADER, 401)
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    auth = call.authenticate(
        brand_slug=brand_slug,
        integration=Integration.M8COM,
        secret=secret if scheme.lower() == "bearer" and secret else "\x00invalid",
    )
    if auth.status == 404:
        return error_response(NotFound("No such brand."))
    if auth.status:
        return json_response(INVALID_SECRET, 403)
    return None


def m8com_lookup(request, brand_slug: str):
    """The whole M8Com number lookup: auth, (cached) lookup, log."""
    call = InboundCall(request, ENDPOINT)
    try:
        if request.method != "GET":
            raise MethodNotAllowed("GET")
        refused = m8com_key_check(call, request, brand_slug)
        if refused is not None:
            return call.finish(refused)
        brand = call.brand
        assert brand is not None  # an accepted key always comes with its brand
        query = request.GET
        from_number = query.get("fromNumber", "")
        if not from_number.strip():
            message = "fromNumber is required."
            return call.finish(error_response(ValidationFailed(message, fields={"fromNumber": [message]})))
        region = brand.default_region
        numbers = (
            ("fromNumber", phone_or_none(from_number, region)),
            ("toNumber", phone_or_none(query.get("toNumber", ""), region)),
        )
        templates = (brand.more_info_url_template, orjson.dumps(brand.create_activity_urls))
        key = (brand.pk, brand.generation, ENDPOINT, numbers[0][1], numbers[1][1], templates)
        cached = lookup_cache.get(key)
        if cached is None:
            cached = m8com_contact_find(brand, numbers)
            lookup_cache.set(key, cached)
        body, customer_pk, note = cached
        if body is None and (
            upstream := lookup_upstream(
                brand=brand, keys=upstream_keys(brand, numbers), started=call.started
            )
        ):
            body, customer_pk, note = (
                m8com_contact_body(brand, upstream.m8com_row()),
                upstream.customer_pk,
                upstream.note,
            )
        if body is None:
            response = json_response(NO_CONTACT, 404)
            # A miss is a normal answer, not an error: keep it out of Django's
            # "Not Found" warnings (it is in the request log like every call).
            response._has_been_logged = True  # type: ignore[attr-defined]  # Django's own marker (log_response)
            return call.finish(response, customers_returned=0, note=note)
        return call.finish(json_response(None, raw=body), customers_returned=1, customer_id=customer_pk, note=note)
    except Exception as exc:  # noqa: BLE001 - a 4xx of the vocabulary or a logged JSON 500, never HTML
        return call.fail(exc)


# ---------------------------------------------------------------- OpenAPI


class M8ComBearerAuthentication(BaseAuthentication):
    """Documentation only: the view checks the secret itself (hub.selectors)."""

    def authenticate(self, request):  # pragma: no cover - never called, see M8ComNumberLookupApi.dispatch
        return None


class M8ComBearerScheme(OpenApiAuthenticationExtension):
    target_class = M8ComBearerAuthentication
    name = "m8comBearer"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "Authorization: Bearer <secret> with an active M8Com key of the brand.",
        }


def _message(name: str, example: str):
    return inline_serializer(name, {"message": serializers.CharField(help_text=example)})


def _activity_serializer(**kwargs):
    ms = "Unix timestamp in milliseconds."
    text = {"required": False}
    return inline_serializer(
        "M8ComActivity",
        {
            "type": serializers.ChoiceField(["NOTE", "TASK", "CALL", "TICKET", "DEAL", "APPOINTMENT"]),
            "body": serializers.CharField(allow_blank=True),
            "timestamp": serializers.IntegerField(help_text=ms),
            "header": serializers.CharField(**text),
            "customHeader": serializers.CharField(**text),
            "customDescription": serializers.CharField(**text),
            "associatedUser": serializers.CharField(**text),
            "assignedUser": serializers.CharField(**text),
            "status": serializers.CharField(**text),
            "done": serializers.BooleanField(**text),
            "dueDate": serializers.IntegerField(required=False, help_text="TASK. " + ms),
            "toNumber": serializers.CharField(required=False, allow_blank=True, help_text="CALL: callee."),
            "fromNumber": serializers.CharField(required=False, allow_blank=True, help_text="CALL: caller."),
            "duration": serializers.IntegerField(required=False, help_text="CALL: milliseconds."),
            "startTime": serializers.IntegerField(required=False, help_text="CALL. " + ms),
            "createdDate": serializers.IntegerField(required=False, help_text="TICKET. " + ms),
            "priority": serializers.ChoiceField(["HIGH", "MEDIUM", "LOW"], required=False),
            "pipeline": serializers.CharField(**text),
            "pipelineStage": serializers.CharField(**text),
            "closeDate": serializers.IntegerField(required=False, help_text="DEAL. " + ms),
            "currency": serializers.CharField(**text),
            "amount": serializers.FloatField(required=False),
            "startDate": serializers.IntegerField(required=False, help_text="APPOINTMENT. " + ms),
            "endDate": serializers.IntegerField(required=False, help_text="APPOINTMENT. " + ms),
            "allDay": serializers.BooleanField(**text),
            "venue": serializers.CharField(**text),
            "link": serializers.CharField(**text),
            "markdown": serializers.BooleanField(**text),
        },
        **kwargs,
    )


def _contact_serializer():
    entry = {"id": serializers.CharField(), "comment": serializers.CharField(required=False)}
    return inline_serializer(
        "M8ComContact",
        {
            "displayName": serializers.CharField(),
            "firstName": serializers.CharField(required=False),
            "lastName": serializers.CharField(required=False),
            "avatarUrl": serializers.CharField(required=False),
            "coverPhotoUrl": serializers.CharField(required=False),
            "emails": inline_serializer("M8ComEmail", entry, many=True, required=False),
            "phoneNumbers": inline_serializer("M8ComPhoneNumber", entry, many=True, required=False),
            "companyInfo": inline_serializer(
                "M8ComCompanyInfo",
                {"name": serializers.CharField(required=False), "title": serializers.CharField(required=False)},
                required=False,
            ),
            "fields": inline_serializer(
                "M8ComField",
                {"title": serializers.CharField(), "comment": serializers.CharField(allow_blank=True)},
                many=True,
                required=False,
            ),
            "activities": _activity_serializer(many=True, required=False),
            "createActivityUrls": inline_serializer(
                "M8ComCreateUrl",
                {"name": serializers.CharField(), "url": serializers.CharField()},
                many=True,
                required=False,
            ),
            "moreInfoUrl": serializers.CharField(required=False),
        },
    )


class M8ComNumberLookupApi(APIView):
    """M8Com number lookup (contract: m8com-insights-webhook.txt, "Number Lookup")."""

    authentication_classes = [M8ComBearerAuthentication]
    permission_classes: list = []
    http_method_names = ["get"]

    @extend_schema(
        operation_id="m8com_number_lookup",
        tags=["M8Com"],
        summary="Find the contact for a phone number",
        description="Looks the contact up by `fromNumber`, then by `toNumber`, leaving out the brand's own "
        "lines (so the other number is the customer). Numbers may be written with spaces "
        "(`+46 70 123 45 67`); a value that is no phone number, or an extension (5 digits or fewer), is a "
        "normal miss. The brand's matching policy decides the address types and optional suffix matching. "
        "Several customers with the number: the most recently updated one. Unknown query parameters (and the experimental "
        "`user` object) are ignored.",
        parameters=[
            OpenApiParameter("brand_slug", OpenApiTypes.STR, OpenApiParameter.PATH, description="The brand's slug."),
            OpenApiParameter(
                "fromNumber", OpenApiTypes.STR, OpenApiParameter.QUERY, required=True, description="The caller."
            ),
            OpenApiParameter("toNumber", OpenApiTypes.STR, OpenApiParameter.QUERY, description="The dialed number."),
        ],
        responses={
            200: OpenApiResponse(_contact_serializer(), description="The contact."),
            400: OpenApiResponse(ErrorSerializer, description="fromNumber missing (named in error.fields)."),
            401: OpenApiResponse(
                _message("M8ComNoHeader", "No authorization header provided"), description="No Authorization header."
            ),
            403: OpenApiResponse(
                _message("M8ComInvalidSecret", "Invalid secret"),
                description="Wrong, revoked or another brand's secret, or a call from outside the key's networks.",
            ),
            404: OpenApiResponse(
                inline_serializer(
                    "M8ComNotFound",
                    {
                        "message": serializers.CharField(required=False, help_text="No contact found"),
                        "error": ErrorDetailSerializer(required=False),
                    },
                ),
                description='No contact has the number ({"message": "No contact found"}), or no such brand '
                '({"error": {...}}).',
            ),
            500: OpenApiResponse(ErrorSerializer, description="Unexpected failure."),
        },
    )
    def get(self, request, brand_slug: str):
        return m8com_lookup(request, brand_slug)

    def dispatch(self, request, *args, **kwargs):
        # Hot path: the view reads one header and the query string; DRF's
        # request machinery is skipped (the class exists for the schema).
        return m8com_lookup(request, kwargs["brand_slug"])


m8com_answer_register(  # "Test a lookup" (hooks.sources) answers as this lookup does
    find=lambda brand, number: m8com_contact_find(brand, (("fromNumber", number), ("toNumber", None))),
    contact_body=m8com_contact_body,
    no_contact=NO_CONTACT,
)

urlpatterns = [
    re_path(r"^m8com/(?P<brand_slug>[^/]+)/lookup(?:/+)?$", M8ComNumberLookupApi.as_view(), name="m8com-number-lookup")
]
