"""What every platform endpoint shares: key check, JSON answers and errors,
the request log, and the one accept path's view for inbound events.

Each adapter module (one per contract) authenticates through
:meth:`InboundCall.authenticate` and ends with :meth:`InboundCall.finish`
(or :meth:`InboundCall.fail` for an exception), which hands an
``InboundRequest`` row to the buffered writer (synclog.writer) — logging never
slows or fails a call. Every error a platform gets is rendered from hub.exceptions
(the one error vocabulary); an exception that is not one of them is a logged 500.

The event endpoints (M8Com call log, service hooks) subclass
:class:`EventAcceptApi`: they say which source a URL is and how its key is
checked; everything else (405, 413/415, parse, store raw, interpret, answer)
is :func:`event_accept_view`, the same for every adapter.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from typing import Any

import orjson
from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import RequestDataTooBig
from django.db import connection
from django.db.models.base import ModelState
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from rest_framework.views import APIView

from customers.selectors import sql_rows
from hub import generations, metrics
from hub.exceptions import (
    ApplicationError,
    MethodNotAllowed,
    TooLarge,
    UnsupportedMediaType,
    application_error,
    error_body,
)
from hub.models import Brand, Credential
from hub.net import client_ip
from hub.redaction import redact_query, redact_text
from hub.selectors import AuthResult, credential_authenticate, credential_needs_touch
from synclog import writer

from .models import INTERPRETED_STATES, EventSource, EventState, InboundEvent
from .services import inbound_event_accept

logger = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
BODY_LOG_LIMIT = 16 * 1024

metrics.endpoints_declare(*EventSource.values)  # the event endpoints' names are their sources


def json_response(payload: Any, status: int = 200, *, raw: bytes | None = None) -> HttpResponse:
    body = raw if raw is not None else orjson.dumps(payload)
    return HttpResponse(body, status=status, content_type=JSON_CONTENT_TYPE)


def error_response(error: ApplicationError) -> HttpResponse:
    """The JSON answer for an error of the one vocabulary (hub.exceptions)."""
    response = json_response(error.body(), error.status_code)
    for name, value in error.headers.items():
        response[name] = value
    return response


def server_error_response() -> HttpResponse:
    return json_response(error_body("server_error", "An unexpected error occurred."), 500)


class _CredentialQuery:
    """hub.selectors.credential_by_hash (credential by hash, brand joined), as
    SQL built once from the models and run as a prepared statement
    (customers.selectors.sql_rows): on the lookup hot path the ORM's query
    compilation costs more than the query itself.

    The instances built from a row are kept (per key hash) and copied for the
    next call while every column of the row is the same (generation, revocation
    and networks included), so an unchanged key costs no conversion again.
    (Asking PostgreSQL for the rows' versions instead of every column was
    measured: the client saves ~10 us, the server spends more.)
    """

    def __init__(self) -> None:
        self.sql = ""
        self.fields: list = []
        self.decoded: dict[str, tuple] = {}

    # Not read on the request path; left deferred (loaded on access), they save
    # two timestamp conversions per call.
    DEFERRED = frozenset({"created_at"})

    def prepare(self) -> None:
        credential_fields = [f for f in Credential._meta.concrete_fields if f.name not in self.DEFERRED]
        brand_fields = [f for f in Brand._meta.concrete_fields if f.name not in self.DEFERRED]
        columns = [f'c."{f.column}"' for f in credential_fields] + [f'b."{f.column}"' for f in brand_fields]
        self.sql = (
            f'SELECT {", ".join(columns)} FROM "{Credential._meta.db_table}" c '  # noqa: S608 - names from models
            f'JOIN "{Brand._meta.db_table}" b ON b."id" = c."brand_id" WHERE c."secret_hash" = %s'
        )
        self.fields = [(Credential, credential_fields), (Brand, brand_fields)]

    def run(self, digest: str) -> tuple[Credential, Brand] | None:
        if not self.sql:
            self.prepare()
        rows = sql_rows(self.sql, [digest])
        if not rows:
            return None
        row = rows[0]
        seen = self.decoded.get(digest)
        if seen is not None and seen[0] == row:
            return self.copies(seen)
        credential, brand = self.decode(row)
        if len(self.decoded) >= 1000:
            self.decoded.clear()
        self.decoded[digest] = (row, _clone(credential), _clone(brand))
        return credential, brand

    @staticmethod
    def copies(seen: tuple) -> tuple[Credential, Brand]:
        """Fresh instances for this call (callers may change them, e.g. last_used_at)."""
        credential, brand = _clone(seen[1]), _clone(seen[2])
        credential._state.fields_cache["brand"] = brand
        return credential, brand

    def decode(self, row: tuple) -> tuple[Credential, Brand]:
        instances = []
        offset = 0
        for model, fields in self.fields:
            values = []
            for field in fields:
                value = row[offset]
                offset += 1
                if value is not None:
                    for converter in _converters(field):
                        value = converter(value, field, connection)
                values.append(value)
            instances.append(model.from_db(connection.alias, [f.attname for f in fields], values))
        credential, brand = instances
        credential.brand = brand
        return credential, brand


def _clone(instance: Any) -> Any:
    """A shallow copy of a model instance as loaded from the database (what
    copy.copy gives, without its pickling protocol; related objects not kept).
    JSON values are shared: nothing on the lookup path changes them in place."""
    clone = object.__new__(type(instance))
    clone.__dict__.update(instance.__dict__)
    state = clone._state = ModelState()
    state.adding = False
    state.db = instance._state.db
    return clone


@functools.lru_cache(maxsize=128)
def _converters(field) -> tuple:
    col = field.get_col(field.model._meta.db_table)
    return tuple(connection.ops.get_db_converters(col)) + tuple(field.get_db_converters(connection))


_credential_query = _CredentialQuery()


class _CredentialCache:
    """(credential, brand) by key hash without a database round trip.

    An entry is the row as read, tagged with the brand generation it carries,
    kept in this process and (with the Redis board) in Django's cache for the
    other processes. It is used only while hub.generations' board shows that
    same generation: every change to the brand or its keys (issue, revocation,
    allowlist, deletion, brand settings) and to its customers bumps it before it
    commits, so a revoked key is refused by the very next call in every process.
    A hit costs the board read (a memory read, or one Redis GET). The rules of
    an accepted key stay in hub.selectors.credential_authenticate, applied to
    the cached row on every call (revocation, brand, integration, networks).
    """

    LIMIT = 10_000
    SHARED_TIMEOUT_SECONDS = 3600

    def __init__(self, query: _CredentialQuery) -> None:
        self.query = query
        self.entries: dict[str, tuple[int, int, Credential, Brand]] = {}

    def find(self, digest: str) -> tuple[Credential, Brand] | None:
        board = generations.board()
        entry = self.entries.get(digest)
        if entry is None and board.kind == "redis":
            entry = self._shared_get(digest)
        if entry is not None and board.read(entry[0]) == entry[1]:
            return _CredentialQuery.copies((None, entry[2], entry[3]))
        found = self.query.run(digest)
        if found is None or board.kind == "off":
            return found
        credential, brand = found
        if board.read(brand.pk) is None:
            self._fill(board, brand.pk)
        if len(self.entries) >= self.LIMIT:
            self.entries.clear()
        entry = (brand.pk, brand.generation, _clone(credential), _clone(brand))
        self.entries[digest] = entry
        if board.kind == "redis":
            self._shared_set(digest, entry)
        return found

    def touched(self, credential: Credential) -> None:
        """The writer records this use: the cached row says so too (one touch a minute, not one a call)."""
        entry = self.entries.get(credential.secret_hash)
        if entry is not None and entry[2].pk == credential.pk:
            entry[2].last_used_at = credential.last_used_at

    def clear(self) -> None:
        self.entries.clear()

    @staticmethod
    def _fill(board: generations.Board, brand_id: int) -> None:
        """The board has no value (new file, Redis restarted): the generation read
        now, after seeing none (a change in flight publishes its own on commit)."""
        generation = Brand.objects.filter(pk=brand_id).values_list("generation", flat=True).first()
        if generation is None:
            return
        try:
            board.publish(brand_id, generation)
        except Exception:  # noqa: BLE001 - nothing cached is used until a value is published
            logger.warning("Generation board: could not publish brand %s", brand_id, exc_info=True)

    def _shared_get(self, digest: str) -> tuple | None:
        try:
            entry = caches["default"].get(self._shared_key(digest))
        except Exception:  # noqa: BLE001 - a cache outage costs a query, never the call
            logger.warning("Credential cache: shared cache read failed", exc_info=True)
            return None
        if entry is not None:
            self.entries[digest] = entry
        return entry

    def _shared_set(self, digest: str, entry: tuple) -> None:
        try:
            caches["default"].set(self._shared_key(digest), entry, self.SHARED_TIMEOUT_SECONDS)
        except Exception:  # noqa: BLE001
            logger.warning("Credential cache: shared cache write failed", exc_info=True)

    @staticmethod
    def _shared_key(digest: str) -> str:
        # The key's hash hashed again: Redis never holds the value the database looks keys up by.
        return "hookhub:cred:" + hashlib.sha256(digest.encode()).hexdigest()


credential_cache = _CredentialCache(_credential_query)


def credential_check(*, brand_slug: str, integration: str, secret: str | None, client_ip: str) -> AuthResult:
    """hub.selectors.credential_authenticate (the rules of an accepted key) on
    the row from the credential cache, or from its one query run as SQL
    prepared once. A slug with a NUL character (``/hooks/omnidesk/ac%00me/...``)
    names no brand: 404 without asking a database that cannot compare it
    (PostgreSQL text refuses NUL)."""
    if "\x00" in brand_slug:
        return AuthResult(404, reason="unknown brand")
    return credential_authenticate(
        brand_slug=brand_slug, integration=integration, secret=secret, client_ip=client_ip, find=credential_cache.find
    )


class InboundCall:
    """One platform call, from arrival to its log row."""

    __slots__ = ("request", "endpoint", "started", "remote_addr", "auth")

    def __init__(self, request, endpoint: str):
        self.request = request
        self.endpoint = endpoint
        self.started = time.perf_counter()
        self.remote_addr = client_ip(request)
        self.auth: AuthResult | None = None

    def authenticate(self, *, brand_slug: str, integration: str, secret: str | None) -> AuthResult:
        self.auth = credential_check(
            brand_slug=brand_slug, integration=integration, secret=secret, client_ip=self.remote_addr
        )
        return self.auth

    @property
    def brand(self) -> Brand | None:
        return self.auth.brand if self.auth else None

    @property
    def credential(self) -> Credential | None:
        return self.auth.credential if self.auth else None

    def finish(
        self,
        response: HttpResponse,
        *,
        customers_returned: int | None = None,
        customer_id: int | None = None,
        note: str = "",
        request_body: str = "",
        log_response_body: bool = False,
    ) -> HttpResponse:
        """Log the call (key redacted) and return the response unchanged."""
        try:
            elapsed = time.perf_counter() - self.started
            metrics.inbound_call_observe(endpoint=self.endpoint, status=response.status_code, seconds=elapsed)
            credential = self.credential
            now = timezone.now()
            brand = self.brand
            row = {
                "brand_id": brand.pk if brand else None,
                "endpoint": self.endpoint,
                "method": self.request.method,
                "path": self.request.path[:500],
                "query": redact_query(self.request.META.get("QUERY_STRING", "")),
                "credential_prefix": credential.prefix if credential else "",
                "status": response.status_code,
                "latency_ms": round(elapsed * 1000, 3),
                "customers_returned": customers_returned,
                "customer_id": customer_id,
                "remote_addr": self.remote_addr[:64],
                "request_body": redact_text(request_body[:BODY_LOG_LIMIT]) if request_body else "",
                "response_body": (
                    response.content[:BODY_LOG_LIMIT].decode("utf-8", "replace")
                    if log_response_body or response.status_code >= 400
                    else ""
                ),
                "note": note[:300],
                "created_at": now,
            }
            _storable_row(row)
            touched = credential if credential is not None and credential_needs_touch(credential) else None
            if touched is not None:
                touched.last_used_at = now
                credential_cache.touched(touched)
            writer.record(row, credential_id=touched.pk if touched is not None else None, used_at=now)
        except Exception:  # noqa: BLE001 - a log failure never fails the call
            logger.exception("Could not record inbound request")
        return response

    def fail(self, exc: BaseException, *, event_id: int | None = None) -> HttpResponse:
        """The answer to an exception raised while serving the call: the caller's
        errors (hub.exceptions.application_error: a wrong request, too many query
        parameters ...) as their 4xx; anything else is a real fault, a 500,
        logged with the stored event's id when there is one."""
        error = application_error(exc)
        if error is not None:
            return self.finish(error_response(error))
        stored = f" (inbound event {event_id} is stored)" if event_id else ""
        logger.error("%s failed%s", self.endpoint, stored, exc_info=exc)
        return self.finish(server_error_response(), note=f"event {event_id} stored" if event_id else "")


def _storable_row(row: dict[str, Any]) -> None:
    """No NUL in the log row's text (PostgreSQL text refuses it): the path as
    it was sent (%00), elsewhere escaped."""
    for name, value in row.items():
        if isinstance(value, str) and "\x00" in value:
            row[name] = value.replace("\x00", "%00" if name == "path" else "\\u0000")


# ---------------------------------------------------------------- the one accept path for inbound events


def json_body_read(request: HttpRequest) -> bytes:
    """The request body's bytes: 413 when over HUB_MAX_BODY_BYTES (from
    Content-Length before reading, and as read), 415 when not sent as JSON.
    Nothing about its content is checked here."""
    limit = settings.HUB_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    too_big = TooLarge(f"The request body is larger than {limit} bytes.")
    if declared > limit:
        raise too_big
    content_type = request.META.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        # WSGI servers report a missing Content-Type as text/plain.
        got = "none" if content_type in ("", "text/plain") else repr(content_type)
        raise UnsupportedMediaType(
            f"Send the event as JSON with Content-Type: application/json (Content-Type received: {got})."
        )
    try:
        raw = request.body
    except RequestDataTooBig:
        raise too_big from None
    if len(raw) > limit:
        raise too_big
    return raw


def event_response_body(event: InboundEvent, duplicate: bool) -> tuple[dict[str, Any], int]:
    """What an event endpoint answers once the event is stored: 200 when it
    was interpreted (processed or unmatched), 202 when it is stored but not
    interpreted (invalid: its fields could not be read, with the reason;
    failed; received). Nothing stored is ever answered 4xx or 5xx."""
    body: dict[str, Any] = {
        "id": event.pk,
        "status": event.state,
        "duplicate": duplicate,
        "customerID": event.customer.customer_id if event.customer_id and event.customer else None,
    }
    if event.state == EventState.INVALID:
        body["reason"] = event.error
    return body, 200 if event.state in INTERPRETED_STATES else 202


class EventAcceptApi(APIView):
    """The view every inbound event endpoint is: a subclass names the log
    endpoint and the event source of a URL and checks the key; the rest is
    :func:`event_accept_view`. DRF's request machinery is skipped (the class
    exists for the schema: subclasses describe ``post`` with extend_schema)."""

    permission_classes: list = []
    http_method_names = ["post"]

    def endpoint_name(self, **kwargs: str) -> str:
        """The request log's endpoint, e.g. m8com.calllog."""
        raise NotImplementedError

    def event_source(self, **kwargs: str) -> str:
        """The EventSource the URL posts to; raise an ApplicationError (NotFound) when it names none."""
        raise NotImplementedError

    def key_check(self, call: InboundCall, request: HttpRequest, brand_slug: str) -> HttpResponse | None:
        """Authenticate with call.authenticate(); None when the key is accepted, else the refusal to answer."""
        raise NotImplementedError

    def post(self, request, **kwargs):
        return event_accept_view(self, request, **kwargs)

    def dispatch(self, request, *args, **kwargs):
        return event_accept_view(self, request, **kwargs)


def event_accept_view(view: EventAcceptApi, request: HttpRequest, **kwargs: str) -> HttpResponse:
    """Authenticate, check size and content type, then store raw and interpret
    (hooks.inbound.services.inbound_event_accept), and answer 2xx for the
    stored event. Errors before storage are 4xx of the one vocabulary."""
    call = InboundCall(request, view.endpoint_name(**kwargs)[:60])
    event_id = None
    try:
        if request.method != "POST":
            raise MethodNotAllowed("POST")
        source = view.event_source(**kwargs)
        refused = view.key_check(call, request, kwargs["brand_slug"])
        if refused is not None:
            return call.finish(refused)
        assert call.brand is not None  # an accepted key always comes with its brand
        body = json_body_read(request)
        event, duplicate = inbound_event_accept(
            brand=call.brand, source=source, body=body, headers=dict(request.headers)
        )
        event_id = event.pk
        metrics.inbound_event_observe(source=source, state=event.state, duplicate=duplicate)
        return call.finish(
            json_response(*event_response_body(event, duplicate)),
            customer_id=event.customer_id,
            note=f"event {event.pk} {event.state}{' (duplicate)' if duplicate else ''}",
            request_body=body.decode("utf-8", "replace"),
        )
    except Exception as exc:  # noqa: BLE001 - a 4xx of the vocabulary, or a logged JSON 500
        return call.fail(exc, event_id=event_id)


# ---------------------------------------------------------------- OpenAPI


@functools.cache
def openapi_error(name: str):
    """The hub's error body, ``{"error": {"code", "message", "fields"}}``, for the schema."""
    from drf_spectacular.utils import inline_serializer
    from rest_framework import serializers

    return inline_serializer(
        name,
        {
            "error": inline_serializer(
                f"{name}Detail",
                {
                    "code": serializers.CharField(),
                    "message": serializers.CharField(),
                    "fields": serializers.DictField(
                        child=serializers.ListField(child=serializers.CharField()), required=False
                    ),
                },
            )
        },
    )


@functools.cache
def openapi_event_accepted():
    from drf_spectacular.utils import inline_serializer
    from rest_framework import serializers

    return inline_serializer(
        "InboundEventAccepted",
        {
            "id": serializers.IntegerField(help_text="The stored event (admin: Inbound events)."),
            "status": serializers.ChoiceField([state.value for state in EventState]),
            "duplicate": serializers.BooleanField(help_text="A retry of an event already stored: nothing new."),
            "customerID": serializers.CharField(allow_null=True, help_text="The matched customer's ID, or null."),
            "reason": serializers.CharField(
                required=False, help_text="Only for status invalid: the fields that could not be read."
            ),
        },
    )


def openapi_event_responses(specific: dict) -> dict:
    """The answers every event endpoint shares, plus its own (401/403/404)."""
    from drf_spectacular.utils import OpenApiResponse

    error = openapi_error("InboundEventError")
    return {
        200: OpenApiResponse(openapi_event_accepted(), description="Stored and interpreted (or a retry of one)."),
        202: OpenApiResponse(
            openapi_event_accepted(),
            description="Stored, not interpreted: status invalid (fields could not be read, see reason) or "
            "failed (processing failed; it is kept and can be reprocessed).",
        ),
        400: OpenApiResponse(error, description="The body is not JSON (invalid_json), nothing stored."),
        405: OpenApiResponse(error, description="Not POST."),
        413: OpenApiResponse(error, description="Body over HUB_MAX_BODY_BYTES."),
        415: OpenApiResponse(error, description="Not application/json."),
        500: OpenApiResponse(error, description="Unexpected failure before the event was stored."),
        **specific,
    }
