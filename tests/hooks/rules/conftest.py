"""Rules fixtures: a movable engine clock, a local receiver, posting inbound events."""

from __future__ import annotations

import json

import pytest

from hooks.outbound.engine import run as outbound_run
from hooks.outbound.models import Delivery
from tests.factories import credential, customer


@pytest.fixture
def receiver(httpserver):
    """(httpserver, base URL) — a real HTTP receiver on 127.0.0.1."""
    return httpserver, httpserver.url_for("").rstrip("/")


@pytest.fixture
def maria(brand):
    return customer(
        brand,
        customer_id="K-1001",
        first_name="Maria",
        last_name="Andersson",
        addresses=[{"kind": "telephone", "value": "+31 6 1234 5678"}],
        custom_fields=[{"customerType": "unlimited"}],
    )


@pytest.fixture
def post_event(client, brand):
    """POST a service hook / call log for the acme brand with a fresh key."""
    keys = {}

    def post(path: str, payload: dict, *, slug: str = "acme"):
        if path.startswith("servicehooks"):
            integration, headers = "servicehooks", "x-api-key"
        else:
            integration, headers = "m8com", "Authorization"
        if (slug, integration) not in keys:
            from hub.models import Brand

            keys[(slug, integration)] = credential(Brand.objects.get(slug=slug), integration)
        secret = keys[(slug, integration)]
        value = secret if headers == "x-api-key" else f"Bearer {secret}"
        section, rest = path.split("/", 1)
        url = f"/hooks/{section}/{slug}/{rest}"
        response = client.post(url, data=json.dumps(payload), content_type="application/json", headers={headers: value})
        assert response.status_code == 200, response.content
        return response.json()

    return post


def run_all(rounds: int = 10) -> int:
    """Run the engine until nothing is due (what the worker does after each commit)."""
    total = 0
    for _ in range(rounds):
        sent = outbound_run.deliveries_run()
        total += sent
        if not sent:
            break
    return total


def deliveries():
    return list(Delivery.objects.order_by("pk"))
