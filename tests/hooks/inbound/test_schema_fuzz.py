"""schemathesis against the inbound event endpoints (in-process WSGI, bounded):
no 5xx, and every answer's status, content type and body as the schema says."""

from __future__ import annotations

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

from hooks.inbound.models import InboundEvent
from tests.factories import credential, customer

CALLLOG = "/hooks/m8com/{brand_slug}/calllog"
SERVICEHOOK = "/hooks/servicehooks/{brand_slug}/{event_type}"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(autouse=True)
def _keep_test_connection():
    """The WSGI app must not close the test's connection between requests."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def fuzz(operation, path_parameters, headers, statuses: set[int], examples: int = 30) -> None:
    @given(case=operation.as_strategy())
    @hypothesis_settings(
        max_examples=examples, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )
    def run(case):
        case.path_parameters = {**(case.path_parameters or {}), **path_parameters}
        case.headers = {**(case.headers or {}), **headers}
        response = case.call()
        statuses.add(response.status_code)
        case.validate_response(response, checks=CHECKS)

    run()


@pytest.mark.django_db
def test_inbound_endpoints_survive_generated_requests(brand):
    customer(brand, customer_id="K1", addresses=[{"kind": "telephone", "value": "+31612345678"}])
    secret = credential(brand, "m8com")
    key = credential(brand, "servicehooks")
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    seen_calllog: set[int] = set()
    fuzz(schema[CALLLOG]["POST"], {"brand_slug": brand.slug}, {"Authorization": f"Bearer {secret}"}, seen_calllog)
    # Every generated JSON body is stored: interpreted (200) or kept as invalid (202), never
    # refused (415: a generated request without a body has no JSON Content-Type).
    assert 200 in seen_calllog and seen_calllog <= {200, 202, 415}, seen_calllog
    for event_type in ("abandoned-conversation", "outbound-call", "workitem-closed"):
        seen: set[int] = set()
        fuzz(
            schema[SERVICEHOOK]["POST"],
            {"brand_slug": brand.slug, "event_type": event_type},
            {"x-api-key": key},
            seen,
            examples=15,
        )
        assert seen & {200, 202} and seen <= {200, 202, 415}, (event_type, seen)
    assert InboundEvent.objects.exists()
