import pytest

from tests.factories import credential, customer


@pytest.fixture
def m8com_key(brand):
    return credential(brand, "m8com")


@pytest.fixture
def sh_key(brand):
    return credential(brand, "servicehooks")


@pytest.fixture
def maria(brand):
    """A customer with a phone number and a custom field, made through the service."""
    return customer(
        brand,
        customer_id="K-1001",
        first_name="Maria",
        last_name="Andersson",
        addresses=[{"kind": "telephone", "value": "+31 6 1234 5678"}, {"kind": "email", "value": "maria@example.com"}],
        custom_fields=[{"customerType": "unlimited"}],
    )


@pytest.fixture
def post_json(client):
    import json

    def post(url, payload, **headers):
        body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
        return client.post(
            url, data=body, content_type=headers.pop("content_type", "application/json"), headers=headers
        )

    return post
