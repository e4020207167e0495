"""An inbound event shows up in the next lookup on both platforms' endpoints
(and a cached lookup answer is never stale after it)."""

import pytest

from tests.factories import credential

pytestmark = pytest.mark.django_db

START = 1_763_800_000_000


def test_call_log_and_service_hooks_appear_in_next_lookups(client, post_json, brand, maria):
    m8com = credential(brand, "m8com")
    omnidesk = credential(brand, "omnidesk")
    hooks = credential(brand, "servicehooks")

    def m8com_lookup():
        response = client.get(
            "/hooks/m8com/acme/lookup",
            {"fromNumber": "+31612345678"},
            headers={"Authorization": f"Bearer {m8com}"},
        )
        assert response.status_code == 200
        return response.json()

    def omnidesk_lookup():
        response = client.get(
            "/hooks/omnidesk/acme/customerlookup",
            {"key": omnidesk, "channelAddressType": "phoneNumber", "address": "+31612345678"},
        )
        assert response.status_code == 200
        return response.json()

    assert "activities" not in m8com_lookup()  # warms the cache too
    assert omnidesk_lookup()[0]["timeline"] == []

    post_json(
        "/hooks/m8com/acme/calllog",
        {
            "fromNumber": "+46701234567",
            "toNumber": "+31612345678",
            "duration": 61_000,
            "startTime": START,
            "callType": "Inbound",
            "body": "Call type: Inbound",
            "userId": "u-1",
        },
        Authorization=f"Bearer {m8com}",
    )
    post_json(
        "/hooks/servicehooks/acme/abandoned-conversation",
        {"customerPhoneNumber": "+31612345678", "timeInQueue": 134, "queue": "Sales", "timestamp": START + 60_000},
        **{"x-api-key": hooks},
    )

    activities = m8com_lookup()["activities"]
    assert [(a["type"], a["body"]) for a in activities] == [
        ("NOTE", "Abandoned in queue Sales after 2 min 14 s"),
        ("CALL", "Call type: Inbound"),
    ]
    call = activities[1]
    assert (call["fromNumber"], call["toNumber"], call["duration"], call["startTime"]) == (
        "+46701234567",
        "+31612345678",
        61_000,
        START,
    )
    timeline = omnidesk_lookup()[0]["timeline"]
    assert [(t["type"], t["message"], t["source"]) for t in timeline] == [
        ("note", "Abandoned conversation: Abandoned in queue Sales after 2 min 14 s", "servicehooks"),
        ("call", "Inbound call: Call type: Inbound", "m8com"),
    ]
