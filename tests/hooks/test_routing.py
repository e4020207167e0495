"""Paths under /hooks/ that are not an endpoint: a JSON 404, never Django's HTML
page; an endpoint written with a trailing slash is served as without it."""

from __future__ import annotations

import json

import pytest

from hooks.inbound.lookup_cache import lookup_cache
from tests.factories import credential, customer

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    lookup_cache.clear()
    yield
    lookup_cache.clear()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/hooks/"),
        ("get", "/hooks/omnidesk/acme/lookup"),
        ("post", "/hooks/servicehooks/acme"),
        ("post", "/hooks/nothing/here/at/all/"),
        ("get", "/hooks/omnidesk/acme/customerlookup/extra"),
    ],
)
def test_unknown_paths_answer_json_404(client, brand, method, path):
    if method == "get":
        response = client.get(path)
    else:
        response = client.post(path, data="{}", content_type="application/json")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert path in error["message"]
    assert "/hooks/omnidesk/<brand>/customerlookup" in error["message"]


def test_a_trailing_slash_reaches_the_endpoint(client, brand):
    key = credential(brand, "omnidesk")
    customer(brand, customer_id="42", first_name="Ann", addresses=[{"type": "email", "address": "ann@example.org"}])
    response = client.get("/hooks/omnidesk/acme/customerlookup/", {"key": key, "primaryID": "42"})
    assert response.status_code == 200
    assert [item["customerID"] for item in response.json()] == ["42"]

    m8com = credential(brand, "m8com")
    response = client.get("/hooks/m8com/acme/lookup/", {"fromNumber": "+31600000000"}, HTTP_AUTHORIZATION="Bearer x")
    assert (response.status_code, response.json()) == (403, {"message": "Invalid secret"})
    call = {
        "fromNumber": "+31612312312",
        "toNumber": "+31201234567",
        "duration": 65000,
        "startTime": 1764000000000,
        "callType": "Inbound",
        "body": "Call type: Inbound",
        "userId": "u-1",
    }
    response = client.post(
        "/hooks/m8com/acme/calllog/",
        json.dumps(call),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {m8com}",
    )
    assert response.status_code == 200
    assert response.json()["status"] == "unmatched"
