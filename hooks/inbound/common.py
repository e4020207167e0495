"""What every platform endpoint shares: key check, JSON answers, the request log.

Each adapter module (one per contract) calls :func:`authenticate` and ends
with :meth:`InboundCall.finish`, which hands an ``InboundRequest`` row to the
buffered writer (synclog.writer) — logging never slows or fails a call.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import orjson
from django.db import connection
from django.db.models.base import ModelState
from django.http import HttpResponse
from django.utils import timezone

from customers.selectors import sql_rows
from hub.models import Brand, Credential
from hub.net import client_ip
from hub.redaction import redact_query, redact_text
from hub.selectors import AuthResult, credential_authenticate, credential_needs_touch
from synclog import writer

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
BODY_LOG_LIMIT = 16 * 1024


def json_response(payload: Any, status: int = 200, *, raw: bytes | None = None) -> HttpResponse:
    body = raw if raw is not None else orjson.dumps(payload)
    return HttpResponse(body, status=status, content_type=JSON_CONTENT_TYPE)


def error_response(status: int, code: str, message: str, fields: dict | None = None) -> HttpResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return json_response({"error": error}, status)


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


def credential_check(*, brand_slug: str, integration: str, secret: str | None, client_ip: str) -> AuthResult:
    """hub.selectors.credential_authenticate (the rules of an accepted key),
    with its one query run as SQL prepared once."""
    return credential_authenticate(
        brand_slug=brand_slug, integration=integration, secret=secret, client_ip=client_ip, find=_credential_query.run
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
                "latency_ms": round((time.perf_counter() - self.started) * 1000, 3),
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
            touched = credential if credential is not None and credential_needs_touch(credential) else None
            if touched is not None:
                touched.last_used_at = now
            writer.record(row, credential_id=touched.pk if touched is not None else None, used_at=now)
        except Exception:  # noqa: BLE001 - a log failure never fails the call
            import logging

            logging.getLogger(__name__).exception("Could not record inbound request")
        return response
