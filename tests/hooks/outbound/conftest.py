"""Fixtures for the outbound engine: CRM syncs pointed at a real local receiver,
and a movable engine clock (retries are tested by moving time, never waiting)."""

from __future__ import annotations

import json

import pytest
from django_q.brokers import get_broker

from hooks.outbound.engine import run
from hooks.outbound.models import CrmSync, CrmSyncAction, Delivery

CREATE_BODY = (
    '{"first_name": "{{ person.first_name }}", "last_name": "{{ person.last_name }}", '
    '"name": "{{ person.name }}", "email": "{{ person.email }}", "created_at": "{{ user.created_at }}"}'
)


def make_sync(brand, base_url: str, *, name="CRM", unique_id_path="$.id", **sync_fields) -> CrmSync:
    sync = CrmSync.objects.create(brand=brand, name=name, **sync_fields)
    CrmSyncAction.objects.create(
        sync=sync,
        action="create",
        enabled=True,
        method="POST",
        url=f"{base_url}/people",
        headers="Content-Type: application/json",
        body=CREATE_BODY,
        unique_id_path=unique_id_path,
        timeout_seconds=2,
    )
    CrmSyncAction.objects.create(
        sync=sync,
        action="update",
        enabled=True,
        method="PUT",
        url=f"{base_url}/people/{{{{ remote_id }}}}",
        body='{"name": "{{ person.name }}", "phone": "{{ person.phone }}", "event": "{{ event }}"}',
        timeout_seconds=2,
    )
    CrmSyncAction.objects.create(
        sync=sync,
        action="delete",
        enabled=True,
        method="DELETE",
        url=f"{base_url}/people/{{{{ remote_id }}}}?customer={{{{ customer_id }}}}",
        timeout_seconds=2,
    )
    return sync


@pytest.fixture
def receiver_url(httpserver):
    return httpserver.url_for("").rstrip("/")


def run_all(rounds: int = 10) -> int:
    """Run the engine until nothing is due (what the worker does after each commit)."""
    total = 0
    for _ in range(rounds):
        sent = run.deliveries_run()
        total += sent
        if not sent:
            break
    return total


def queued() -> int:
    """Tasks waiting in the broker: the ORM broker's table, or the Redis list when REDIS_URL is set."""
    return get_broker().queue_size()


def queue_purge() -> None:
    """Forget every queued task (as a lost broker would; also: Redis outlives a test's rollback)."""
    get_broker().purge_queue()


def body_of(request) -> dict:
    return json.loads(request.get_data(as_text=True))


def deliveries():
    return list(Delivery.objects.order_by("pk"))
