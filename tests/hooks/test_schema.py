"""The OpenAPI schema of the lookup endpoints, and a schemathesis run against it.

schemathesis generates requests from /api/schema/ and sends them to the hub
in-process (WSGI), with a valid key / secret and the brand's slug, and checks
every answer: no 5xx, status, content type and body as the schema says.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hooks.inbound.lookup_cache import lookup_cache
from tests.factories import credential, customer


@pytest.fixture(autouse=True)
def _keep_test_connection():
    """The WSGI app must not close the test's database connection between
    requests (Django's test client does the same)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


OMNIDESK = "/hooks/omnidesk/{brand_slug}/customerlookup"
M8COM = "/hooks/m8com/{brand_slug}/lookup"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_schema_describes_both_endpoints(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    omnidesk = schema["paths"][OMNIDESK]["get"]
    assert {p["name"] for p in omnidesk["parameters"]} == {
        "brand_slug",
        "channelAddressType",
        "address",
        "ticketID",
        "primaryID",
    }
    assert set(omnidesk["responses"]) == {"200", "400", "401", "403", "404", "500"}
    assert omnidesk["security"] == [{"omnideskKey": []}]
    m8com = schema["paths"][M8COM]["get"]
    assert {p["name"]: p.get("required", False) for p in m8com["parameters"]} == {
        "brand_slug": True,
        "fromNumber": True,
        "toNumber": False,
    }
    assert set(m8com["responses"]) == {"200", "400", "401", "403", "404", "500"}
    assert m8com["security"] == [{"m8comBearer": []}]
    schemes = schema["components"]["securitySchemes"]
    assert schemes["omnideskKey"] == {
        "type": "apiKey",
        "in": "query",
        "name": "key",
        "description": "An active Omnidesk key of the brand (issued in the admin, shown once).",
    }
    assert schemes["m8comBearer"]["scheme"] == "bearer"
    contact = schema["components"]["schemas"]["M8ComContact"]
    assert contact["required"] == ["displayName"]


def test_schema_describes_the_event_endpoints_answers(client):
    """Both event endpoints are the one accept path: the same answers, 202 for
    a stored event whose fields could not be read (status invalid, reason)."""
    schema = json.loads(client.get("/api/schema/", {"format": "json"}).content)
    for path in ("/hooks/m8com/{brand_slug}/calllog", "/hooks/servicehooks/{brand_slug}/{event_type}"):
        responses = schema["paths"][path]["post"]["responses"]
        assert set(responses) == {"200", "202", "400", "401", "403", "404", "405", "413", "415", "500"}, path
    components = schema["components"]["schemas"]
    accepted = components["InboundEventAccepted"]
    status = components[accepted["properties"]["status"]["$ref"].rsplit("/", 1)[1]]
    assert status["enum"] == ["received", "processed", "unmatched", "invalid", "failed"]
    assert "reason" in accepted["properties"] and "reason" not in accepted["required"]


def test_api_docs_page(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


def fuzz(operation, slug, authorize, statuses: set[int]) -> None:
    @given(case=operation.as_strategy())
    @hypothesis_settings(
        max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )
    def run(case):
        case.path_parameters = {"brand_slug": slug}
        authorize(case)
        response = case.call()
        statuses.add(response.status_code)
        case.validate_response(response, checks=CHECKS)

    run()


@pytest.mark.django_db
def test_schemathesis_finds_no_server_error_and_no_schema_violation(brand):
    lookup_cache.clear()
    key = credential(brand, "omnidesk")
    secret = credential(brand, "m8com")
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for n in range(3):
        customer(
            brand,
            customer_id=f"S{n}",
            addresses=[
                {"type": "telephone", "address": f"+3161234567{n}"},
                {"type": "email", "address": f"s{n}@example.org"},
            ],
            custom_fields=[{"tier": "gold"}],
            activities=[
                {"kind": kind, "occurred_at": start + timedelta(hours=i), "body": "b", "header": "h"}
                for i, kind in enumerate(["NOTE", "TASK", "CALL", "TICKET", "DEAL", "APPOINTMENT", "EVENT"])
            ],
        )
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    seen: dict[str, set[int]] = {OMNIDESK: set(), M8COM: set()}

    def authorize_omnidesk(case):
        case.query = {**(case.query or {}), "key": key}

    def authorize_m8com(case):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {secret}"}

    for path, authorize in ((OMNIDESK, authorize_omnidesk), (M8COM, authorize_m8com)):
        fuzz(schema[path]["GET"], brand.slug, authorize, seen[path])
    # The run reached the real answers, not only the auth errors.
    assert 200 in seen[OMNIDESK] and 400 in seen[OMNIDESK], seen
    assert {200, 404} & seen[M8COM] and 400 in seen[M8COM], seen


@pytest.mark.django_db
def test_schemathesis_known_good_requests(brand):
    """Explicit hits, so the 200 shapes are validated against the schema for sure."""
    key = credential(brand, "omnidesk")
    secret = credential(brand, "m8com")
    customer(
        brand,
        customer_id="K1",
        addresses=[{"type": "telephone", "address": "+31612345670"}],
        activities=[
            {"kind": k, "occurred_at": datetime(2024, 1, 1, tzinfo=UTC), "body": "b"} for k in ("NOTE", "DEAL")
        ],
    )
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    case = schema[OMNIDESK]["GET"].Case(
        path_parameters={"brand_slug": brand.slug}, query={"key": key, "primaryID": "K1"}
    )
    response = case.call()
    assert response.status_code == 200
    case.validate_response(response, checks=CHECKS)
    case = schema[M8COM]["GET"].Case(
        path_parameters={"brand_slug": brand.slug},
        query={"fromNumber": "+31612345670"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    response = case.call()
    assert response.status_code == 200
    case.validate_response(response, checks=CHECKS)
