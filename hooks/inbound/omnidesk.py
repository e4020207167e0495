"""Omnidesk "API sync on contact": ``GET /hooks/omnidesk/<brand-slug>/customerlookup``.

Omnidesk calls the configured URL (with our ``key``) on every contact and adds
``channelAddressType=phoneNumber|email&address=...&ticketID=...`` or
``primaryID=...``. The answer is always a JSON array with
``Content-Type: application/json; charset=utf-8``: ``[]`` when nothing
matches, every customer holding the address when several do, zero or one for
``primaryID``. 400 for missing or malformed parameters, 500 (a
JSON body, never an HTML page) on unexpected failure. See docs/omnidesk-lookup.md.

The hot path is designed, not written: one query checks the key and reads the
brand's cache generation (hub.selectors.credential_authenticate); a cached
answer costs nothing more; otherwise one indexed statement returns the stored
elements (customers.documents), which are joined into the array as bytes.
DRF's request machinery stays off this path; the class is an ``APIView`` so
drf-spectacular documents it.
"""

from __future__ import annotations

import functools
import logging

from django.urls import re_path
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.views import APIView

from customers.matching import phone_match
from customers.normalize import InvalidAddress, is_extension, normalize_email, normalize_phone
from customers.selectors import omnidesk_document_by_customer_id, omnidesk_documents_by_address
from hooks.sources.preview import omnidesk_answer_register
from hooks.sources.services import lookup_upstream
from hooks.sources.tags import key_for
from hub import metrics
from hub.exceptions import Forbidden, MethodNotAllowed, NotAuthenticated, NotFound, ValidationFailed
from hub.models import Brand, Integration

from .common import InboundCall, error_response, json_response
from .lookup_cache import lookup_cache

logger = logging.getLogger(__name__)

ENDPOINT = "omnidesk.lookup"
metrics.endpoints_declare(ENDPOINT)
# Omnidesk channelAddressType -> our address type.
CHANNEL_ADDRESS_TYPES = {"phonenumber": "telephone", "email": "email"}
MAX_PARAM_LENGTH = 254
EXTENSION = "extension"  # an internal extension: a normal miss, never looked up (customers.matching)


class QueryError(Exception):
    """A 400: the parameter at fault and why."""

    def __init__(self, parameter: str, message: str):
        super().__init__(message)
        self.parameter = parameter
        self.message = message


def _param(query, name: str) -> str | None:
    value = query.get(name)
    if value is None:
        return None
    if len(value) > MAX_PARAM_LENGTH:
        raise QueryError(name, f"At most {MAX_PARAM_LENGTH} characters.")
    if "\x00" in value:  # no stored value can hold one (PostgreSQL text refuses NUL)
        raise QueryError(name, "Must not contain a NUL character.")
    return value


def phone_param(value: str) -> str:
    """An unencoded ``+`` in a query string arrives as a space: ``?address=+316...``
    reads " 316..."; put it back before parsing."""
    if value[:1] == " " and value.strip()[:1].isdigit():
        return "+" + value.strip()
    return value


def omnidesk_query_parse(query, *, region: str) -> tuple[str, str]:
    """Omnidesk: the lookup the query asks for, as (address type or "primaryID", normalized value)."""
    primary_id = _param(query, "primaryID")
    if primary_id is not None and primary_id.strip():
        # The contract's primary-id search; an address sent beside it is not read (issue 12).
        return "primaryID", primary_id.strip()
    channel = _param(query, "channelAddressType")
    address = _param(query, "address")
    if primary_id is not None and channel is None and address is None:
        raise QueryError("primaryID", "primaryID must not be empty.")
    if channel is None:
        raise QueryError("channelAddressType", "channelAddressType (phoneNumber or email) or primaryID is required.")
    kind = CHANNEL_ADDRESS_TYPES.get(channel.strip().lower())
    if kind is None:
        raise QueryError("channelAddressType", f"{channel!r} is not one of phoneNumber, email.")
    if address is None or not address.strip():
        raise QueryError("address", "address is required with channelAddressType.")
    try:
        if kind == "email":
            return kind, normalize_email(address)
        if is_extension(phone_param(address)):
            return EXTENSION, address.strip()
        return kind, _phone(address, region)
    except InvalidAddress as exc:
        raise QueryError("address", str(exc)) from exc


@functools.lru_cache(maxsize=16_384)
def _phone(address: str, region: str) -> str:
    # lru_cache does not keep exceptions: a malformed number is parsed again each time.
    return normalize_phone(phone_param(address), region, strict=False)


def omnidesk_customers_find(brand: Brand, kind: str, value: str) -> tuple[bytes, int, int | None, str]:
    """(the JSON array, how many customers, the one customer's pk, log note).
    Phone numbers follow the brand's matching policy (customers.matching);
    several customers sharing an address are all returned, oldest first: the
    contract lets Omnidesk choose (or not) between them."""
    rows: list[tuple] = []
    how = ""
    if kind == "primaryID":
        rows = omnidesk_document_by_customer_id(brand_id=brand.pk, customer_id=value)
    elif kind == EXTENSION:
        how = "an extension (5 digits or fewer): not looked up"
    elif kind == "telephone":
        found = phone_match(brand=brand, numbers=[value], columns="omnidesk", first_only=False)
        if found is not None:
            rows = found.rows
            by_suffix = found.how("address") if found.suffix_digits else ""
            how = "; ".join(part for part in (by_suffix, found.several("all returned")) if part)
    else:
        rows = omnidesk_documents_by_address(brand_id=brand.pk, kind=kind, normalized=value)
        if len(rows) > 1:
            how = f"{len(rows)} customers matched; all returned"
    body = b"[" + ",".join(document for _, document in rows).encode() + b"]"
    return body, len(rows), rows[0][0] if len(rows) == 1 else None, how


def omnidesk_lookup(request, brand_slug: str):
    """The whole Omnidesk call: auth, parse, (cached) lookup, log."""
    call = InboundCall(request, ENDPOINT)
    try:
        if request.method != "GET":
            raise MethodNotAllowed("GET")
        query = request.GET
        auth = call.authenticate(brand_slug=brand_slug, integration=Integration.OMNIDESK, secret=query.get("key"))
        if auth.status:
            return call.finish(AUTH_ERRORS[auth.reason]())
        brand = auth.brand
        assert brand is not None  # an accepted key always comes with its brand
        ticket = query.get("ticketID", "").replace("\x00", "")  # the request log is PostgreSQL text
        note = f"ticketID={ticket[:100]}" if ticket else ""
        try:
            kind, value = omnidesk_query_parse(query, region=brand.default_region)
        except QueryError as exc:
            error = ValidationFailed(exc.message, fields={exc.parameter: [exc.message]})
            return call.finish(error_response(error), note=note)
        key = (brand.pk, brand.generation, ENDPOINT, kind, value)
        cached = lookup_cache.get(key)
        if cached is None:
            cached = omnidesk_customers_find(brand, kind, value)
            lookup_cache.set(key, cached)
        body, count, customer_pk, how = cached
        note = "; ".join(part for part in (note, how) if part)
        if (
            count == 0
            and kind != EXTENSION
            and (upstream := lookup_upstream(brand=brand, keys=[key_for(kind, value)], started=call.started))
        ):
            body, count, customer_pk = upstream.omnidesk_body(), 1, upstream.customer_pk
            note = "; ".join(part for part in (note, upstream.note) if part)
        return call.finish(json_response(None, raw=body), customers_returned=count, customer_id=customer_pk, note=note)
    except Exception as exc:  # noqa: BLE001 - Omnidesk: a 4xx of the vocabulary or a JSON 500, never HTML
        return call.fail(exc)


AUTH_ERRORS = {
    "missing": lambda: error_response(
        NotAuthenticated("The key query parameter is required.", fields={"key": ["This parameter is required."]})
    ),
    "invalid key": lambda: error_response(Forbidden("The key is not valid for this brand.")),
    "network not allowed": lambda: error_response(Forbidden("This key may not be used from your network address.")),
    "unknown brand": lambda: error_response(NotFound("No such brand.")),
}


# ---------------------------------------------------------------- OpenAPI


class OmnideskKeyAuthentication(BaseAuthentication):
    """Documentation only: the view checks the key itself (hub.selectors)."""

    def authenticate(self, request):  # pragma: no cover - never called, see OmnideskCustomerLookupApi.dispatch
        return None


class OmnideskKeyScheme(OpenApiAuthenticationExtension):
    target_class = OmnideskKeyAuthentication
    name = "omnideskKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "query",
            "name": "key",
            "description": "An active Omnidesk key of the brand (issued in the admin, shown once).",
        }


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


class OmnideskAddressSerializer(serializers.Serializer):
    address = serializers.CharField()
    type = serializers.CharField(help_text="email, telephone, whatsapp, facebook, twitter, ...")


class OmnideskTimelineSerializer(serializers.Serializer):
    externalID = serializers.CharField()  # noqa: N815 - the contract's names
    lastUpdate = serializers.CharField(help_text="YYYY-MM-DD HH:MM:SS in the brand's time zone.")  # noqa: N815
    type = serializers.CharField()
    message = serializers.CharField(allow_blank=True)
    source = serializers.CharField(allow_blank=True)
    url = serializers.CharField(allow_blank=True)


class OmnideskCustomerSerializer(serializers.Serializer):
    addresses = OmnideskAddressSerializer(many=True)
    customerFirstname = serializers.CharField(allow_blank=True)  # noqa: N815
    customerID = serializers.CharField()  # noqa: N815
    customerLastname = serializers.CharField(allow_blank=True)  # noqa: N815
    customFields = serializers.ListField(  # noqa: N815
        child=serializers.DictField(child=serializers.CharField(allow_blank=True)),
        help_text='Single-key objects in stored order, e.g. [{"customerType": "unlimited"}].',
    )
    timeline = OmnideskTimelineSerializer(many=True)


EXAMPLE = [
    {
        "addresses": [
            {"address": "blabla@example.org", "type": "email"},
            {"address": "+31612312312", "type": "telephone"},
        ],
        "customerFirstname": "M",
        "customerID": "2019000000000124",
        "customerLastname": "Lukkien",
        "customFields": [{"customerType": "unlimited"}, {"customerSince": "2019-12-24"}],
        "timeline": [
            {
                "externalID": "2354rfwerf45",
                "lastUpdate": "2021-12-21 15:00:11",
                "type": "event",
                "message": "Marketing mail regarding price reduction",
                "source": "hubspot",
                "url": "https://hubspot.com/link234235",
            }
        ],
    }
]


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


class OmnideskCustomerLookupApi(APIView):
    """Omnidesk customer lookup (contract: omnidesk-customer-lookup.txt)."""

    authentication_classes = [OmnideskKeyAuthentication]
    permission_classes: list = []
    http_method_names = ["get"]

    @extend_schema(
        operation_id="omnidesk_customer_lookup",
        tags=["Omnidesk"],
        summary="Find customers by phone number, e-mail address or primary id",
        description="Called by Omnidesk on every contact. Give `channelAddressType` with `address`, or "
        "`primaryID` (which wins when both come). Phone numbers follow the brand's matching policy "
        "(address types, suffix matching, own lines); an extension (5 digits or fewer) answers `[]`. "
        "Always answers a JSON array: `[]` when nothing matches, every match when several "
        "customers share the address, zero or one for `primaryID`.",
        parameters=[
            OpenApiParameter("brand_slug", OpenApiTypes.STR, OpenApiParameter.PATH, description="The brand's slug."),
            OpenApiParameter(
                "channelAddressType",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                enum=["phoneNumber", "email"],
                description="Kind of address; required unless primaryID is given.",
            ),
            OpenApiParameter(
                "address",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                description="E.164 phone number (+31612312311; other spellings of the same number are "
                "accepted and read with the brand's region) or e-mail address.",
            ),
            OpenApiParameter(
                "ticketID", OpenApiTypes.STR, OpenApiParameter.QUERY, description="Recorded in the request log."
            ),
            OpenApiParameter(
                "primaryID",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                description="The brand's customer id (klantnummer). When given, it is the question: "
                "channelAddressType/address sent beside it are not read.",
            ),
        ],
        responses={
            200: OpenApiResponse(
                OmnideskCustomerSerializer(many=True),
                description="The matching customers (possibly none).",
                examples=[OpenApiExample("One customer", value=EXAMPLE)],
            ),
            400: _error("A missing or malformed parameter (named in error.fields)."),
            401: _error("No key query parameter."),
            403: _error("Wrong, revoked or another brand's key, or a call from outside the key's networks."),
            404: _error("No such brand."),
            500: _error("Unexpected failure."),
        },
    )
    def get(self, request, brand_slug: str):
        return omnidesk_lookup(request, brand_slug)

    def dispatch(self, request, *args, **kwargs):
        # Hot path: the view only reads the query string, so DRF's request
        # wrapping, negotiation and finalization are skipped.
        return omnidesk_lookup(request, kwargs["brand_slug"])


omnidesk_answer_register(find=omnidesk_customers_find)  # "Test a lookup" (hooks.sources) answers as this lookup does

urlpatterns = [
    re_path(
        r"^omnidesk/(?P<brand_slug>[^/]+)/customerlookup(?:/+)?$",
        OmnideskCustomerLookupApi.as_view(),
        name="omnidesk-customer-lookup",
    )
]
