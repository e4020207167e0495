"""A cached lookup costs no database round trip, and a key or brand change still
counts from the very next call (hooks.inbound.common's credential cache, hub.generations).

Each test runs against both generation boards: the shared file (no Redis) and Redis
(database 8 of the local server).
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.services import customer_update
from hooks.inbound.common import credential_cache
from hooks.inbound.lookup_cache import lookup_cache
from hub import generations
from hub.models import Brand, Credential
from hub.services import brand_update, credential_issue, credential_revoke
from synclog import writer
from synclog.models import InboundRequest
from tests.factories import customer

REDIS_URL = "redis://127.0.0.1:6379/8"
OMNIDESK = "/hooks/omnidesk/acme/customerlookup"
M8COM = "/hooks/m8com/acme/lookup"


@pytest.fixture(params=["file", "redis"])
def board(request, tmp_path):
    new = generations.FileBoard(str(tmp_path / "generations")) if request.param == "file" else None
    if new is None:
        new = generations.RedisBoard(REDIS_URL)
    new.reset()
    old = generations.board_replace(new)
    credential_cache.clear()
    lookup_cache.clear()
    yield new
    generations.board_replace(old)
    credential_cache.clear()
    lookup_cache.clear()
    new.reset()


@pytest.fixture
def buffered_log(settings):
    """The request log as in production: rows handed to the writer, written by its flush."""
    settings.SYNCLOG_FLUSH_INTERVAL = 3600
    writer.flush()
    yield
    writer.flush()
    assert writer.stop()  # the thread record() started


@pytest.fixture
def maria(brand):
    return customer(
        brand,
        customer_id="C-1",
        first_name="Maria",
        last_name="Andersson",
        addresses=[{"type": "telephone", "address": "+31612312312"}],
    )


def omnidesk(client, secret, **extra):
    return client.get(
        OMNIDESK, {"key": secret, "channelAddressType": "phoneNumber", "address": "+31612312312"}, **extra
    )


def m8com(client, secret):
    return client.get(M8COM, {"fromNumber": "+31612312312"}, headers={"Authorization": f"Bearer {secret}"})


@pytest.mark.parametrize("platform", ["omnidesk", "m8com"])
def test_a_repeat_lookup_costs_no_database_query_and_is_still_logged(
    client, brand, maria, board, buffered_log, platform, django_assert_num_queries
):
    _, secret = credential_issue(brand=brand, integration=platform)
    call = omnidesk if platform == "omnidesk" else m8com
    first = call(client, secret)
    assert first.status_code == 200
    with django_assert_num_queries(0):
        again = call(client, secret)
    assert again.status_code == 200
    assert again.content == first.content
    assert InboundRequest.objects.count() == 0  # nothing written on the response path
    writer.flush()
    assert list(InboundRequest.objects.values_list("status", "customers_returned")) == [(200, 1), (200, 1)]
    assert Credential.objects.get(integration=platform).last_used_at is not None


def test_a_customer_change_shows_in_the_very_next_lookup(client, brand, maria, board, buffered_log):
    _, secret = credential_issue(brand=brand, integration="omnidesk")
    omnidesk(client, secret)
    with CaptureQueriesContext(connection) as cached:
        assert omnidesk(client, secret).json()[0]["customerFirstname"] == "Maria"
    assert len(cached) == 0
    customer_update(customer=maria, first_name="Marie")
    assert omnidesk(client, secret).json()[0]["customerFirstname"] == "Marie"


@pytest.mark.parametrize(
    "change, status",
    [
        ("revoke", 403),
        ("networks", 403),
        ("delete key", 403),
        ("another integration", 403),
        ("brand inactive", 404),
        ("brand slug", 404),
        ("delete brand", 404),
    ],
)
def test_a_key_or_brand_change_refuses_the_cached_key_at_once(
    client, brand, maria, board, buffered_log, change, status
):
    stored, secret = credential_issue(brand=brand, integration="omnidesk")
    assert omnidesk(client, secret).status_code == 200
    with CaptureQueriesContext(connection) as cached:
        assert omnidesk(client, secret).status_code == 200
    assert len(cached) == 0  # answered from the caches: the change below must reach them
    writer.flush()  # the log rows name the brand (deleted below)
    if change == "revoke":
        credential_revoke(credential=stored)
    elif change == "networks":
        stored.allowed_networks = ["203.0.113.0/24"]
        stored.save(update_fields=["allowed_networks"])  # the admin's change form
    elif change == "delete key":
        stored.delete()
    elif change == "another integration":
        stored.integration = "m8com"
        stored.save()
    elif change == "brand inactive":
        brand.is_active = False
        brand_update(brand=brand)
    elif change == "brand slug":
        brand.slug = "acme-eu"
        brand_update(brand=brand)
    else:
        Brand.objects.filter(pk=brand.pk).delete()
    assert omnidesk(client, secret).status_code == status


def test_rotation_a_new_key_works_at_once_and_the_old_one_keeps_working_until_revoked(
    client, brand, maria, board, buffered_log
):
    old, old_secret = credential_issue(brand=brand, integration="omnidesk")
    assert omnidesk(client, old_secret).status_code == 200
    _, new_secret = credential_issue(brand=brand, integration="omnidesk")
    assert omnidesk(client, new_secret).status_code == 200
    assert omnidesk(client, old_secret).status_code == 200
    credential_revoke(credential=old)
    assert omnidesk(client, old_secret).status_code == 403
    assert omnidesk(client, new_secret).status_code == 200


class BrokenBoard:
    """A board that cannot be written (Redis away)."""

    kind = "redis"

    def __init__(self, inner):
        self.inner = inner

    def read(self, brand_id):
        return self.inner.read(brand_id)

    def publish(self, brand_id, generation):
        raise ConnectionError("the board is away")

    def reset(self):
        self.inner.reset()


@pytest.mark.django_db(transaction=True)  # the revocation commits (or not) as in production
def test_a_revocation_the_board_cannot_publish_is_rolled_back_never_half_done(
    client, brand, maria, board, buffered_log
):
    stored, secret = credential_issue(brand=brand, integration="omnidesk")
    assert omnidesk(client, secret).status_code == 200
    generations.board_replace(BrokenBoard(board))
    try:
        with pytest.raises(ConnectionError):
            credential_revoke(credential=Credential.objects.get(pk=stored.pk))
    finally:
        generations.board_replace(board)
    assert Credential.objects.get(pk=stored.pk).revoked_at is None  # the key still works, and says so
    assert omnidesk(client, secret).status_code == 200


def test_a_lost_board_value_is_filled_from_the_database(client, brand, maria, board, buffered_log):
    """Redis restarted (or a new file): the next call reads the database, publishes, and caching resumes."""
    stored, secret = credential_issue(brand=brand, integration="omnidesk")
    assert omnidesk(client, secret).status_code == 200
    board.reset()
    assert board.read(brand.pk) is None
    with CaptureQueriesContext(connection) as refill:
        assert omnidesk(client, secret).status_code == 200
    assert len(refill) > 0
    assert board.read(brand.pk) == Brand.objects.get(pk=brand.pk).generation
    with CaptureQueriesContext(connection) as cached:
        assert omnidesk(client, secret).status_code == 200
    assert len(cached) == 0
    credential_revoke(credential=stored)
    assert omnidesk(client, secret).status_code == 403


def test_a_board_ahead_of_the_database_is_never_trusted(client, brand, maria, board, buffered_log):
    """A change in flight (published, not yet committed) or rolled back: the database answers."""
    _, secret = credential_issue(brand=brand, integration="omnidesk")
    assert omnidesk(client, secret).status_code == 200
    board.publish(brand.pk, Brand.objects.get(pk=brand.pk).generation + 1)
    for _ in range(2):
        with CaptureQueriesContext(connection) as queries:
            assert omnidesk(client, secret).status_code == 200
        assert len(queries) > 0


def test_the_networks_of_a_cached_key_are_checked_on_every_call(client, brand, maria, board, buffered_log):
    _, secret = credential_issue(brand=brand, integration="omnidesk", allowed_networks=["203.0.113.0/24"])
    assert omnidesk(client, secret, REMOTE_ADDR="203.0.113.9").status_code == 200
    assert omnidesk(client, secret, REMOTE_ADDR="203.0.113.9").status_code == 200
    assert omnidesk(client, secret, REMOTE_ADDR="198.51.100.7").status_code == 403


def test_a_brand_saved_from_an_instance_loaded_earlier_shows_at_once(client, brand, maria, board, buffered_log):
    """Brand.save() never writes an old generation back: the bump after it would land on
    the generation the caches hold entries for, and the change would never show."""
    form_copy = Brand.objects.get(pk=brand.pk)  # e.g. an admin form opened before the key was issued
    _, secret = credential_issue(brand=brand, integration="m8com")  # bumps the generation
    assert "moreInfoUrl" not in m8com(client, secret).json()
    assert "moreInfoUrl" not in m8com(client, secret).json()  # from the caches now
    form_copy.more_info_url_template = "https://crm.example.com/two/{{ customer.customer_id }}"
    form_copy.save()
    assert m8com(client, secret).json()["moreInfoUrl"] == "https://crm.example.com/two/C-1"
    assert Brand.objects.get(pk=brand.pk).generation == form_copy.generation == board.read(brand.pk)
