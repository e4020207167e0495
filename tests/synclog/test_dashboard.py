from datetime import timedelta

import pytest
from django.utils import timezone

from hub.models import Role
from synclog.models import InboundRequest
from tests import factories

pytestmark = pytest.mark.django_db


def _calls(brand, statuses, hours_ago=1):
    InboundRequest.objects.bulk_create(
        InboundRequest(
            brand=brand,
            endpoint="omnidesk.lookup",
            path="/hooks/omnidesk/x/customerlookup",
            status=status,
            latency_ms=3.5,
            created_at=timezone.now() - timedelta(hours=hours_ago),
        )
        for status in statuses
    )


def test_dashboard_shows_brand_traffic_and_success_rate(client, brand, other_brand):
    _calls(brand, [200, 200, 200, 403])
    _calls(other_brand, [500] * 7)
    auditor = factories.member(brand, Role.AUDITOR, username="audrey")
    client.force_login(auditor)
    response = client.get("/admin/dashboard/acme/?range=24h")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Inbound calls — 4 in range, 75.0% successful" in html
    assert "<svg" in html and "hh-failed" in html
    assert "omnidesk.lookup" in html
    assert client.get("/admin/dashboard/globex/").status_code == 404


def test_dashboard_home_picks_the_first_brand_and_needs_login(client, brand):
    assert client.get("/admin/dashboard/").status_code == 302
    client.force_login(factories.member(brand, Role.ADMIN, username="ada"))
    response = client.get("/admin/dashboard/")
    assert response.status_code == 200
    assert "Dashboard — Acme" in response.content.decode()


def test_admin_index_shows_start_here_with_the_users_brands(client, brand, other_brand):
    client.force_login(factories.member(brand, Role.AUDITOR, username="ann"))
    html = client.get("/admin/").content.decode()
    assert "Start here" in html
    assert "/admin/dashboard/acme/" in html
    assert "/admin/dashboard/globex/" not in html


def test_admin_index_for_an_empty_hub_explains_how_to_start(admin_client):
    html = admin_client.get("/admin/").content.decode()
    assert "No brand yet" in html
    assert "/admin/hub/brand/add/" in html
