"""The engine's rules in-process: the state machine refuses unlisted moves, the
system check refuses unsafe timing settings, a stopping worker gives its batch
back, and the sweeper's wake-up never piles up tasks."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.utils import timezone
from werkzeug import Response

from hooks.outbound.engine import claim, outbox, run, state, stopping
from hooks.outbound.models import Delivery, DeliveryState
from tests import factories

from .conftest import deliveries, make_sync, queue_purge, queued

pytestmark = [pytest.mark.engine, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def empty_broker():
    queue_purge()
    yield
    queue_purge()


def due(brand) -> Delivery:
    return factories.delivery(brand, state="pending", next_attempt_at=timezone.now())


def hookhub_errors() -> list[str]:
    return [message.id for message in run_checks() if message.id and message.id.startswith("hookhub.")]


# ------------------------------------------------------------------ state machine


@pytest.mark.parametrize(
    ("source", "target"),
    [("obsolete", "pending"), ("delivered", "failed"), ("pending", "delivered")],
)
def test_a_move_the_state_machine_does_not_list_is_refused(brand, source, target):
    delivery = factories.delivery(brand=brand, state=source)
    with pytest.raises(state.TransitionRefused):
        state.deliveries_transition(ids=[delivery.pk], source=[source], target=target)
    delivery.refresh_from_db()
    assert delivery.state == source


def test_a_listed_move_changes_only_rows_still_in_the_source_state(brand):
    waiting = factories.delivery(brand=brand, state="failed")
    done = factories.delivery(brand=brand, state="delivered")
    moved = state.deliveries_transition(ids=[waiting.pk, done.pk], source=["failed"], target="pending")
    assert moved == 1
    assert {d.pk: d.state for d in Delivery.objects.all()} == {waiting.pk: "pending", done.pk: "delivered"}


def test_every_state_has_its_moves_listed():
    assert set(state.MOVES) == set(DeliveryState.values)


# ------------------------------------------------------------------ system check


def test_the_default_settings_pass_the_check():
    assert hookhub_errors() == []


def test_a_lease_not_above_the_longest_timeout_plus_margin_fails_the_check(settings):
    settings.HUB_DELIVERY_LEASE_SECONDS = 35
    assert hookhub_errors() == ["hookhub.E001"]
    with pytest.raises(SystemCheckError, match="HUB_DELIVERY_LEASE_SECONDS is 35 s; it must be above 35 s"):
        call_command("check")
    settings.HUB_DELIVERY_LEASE_SECONDS = 36
    assert hookhub_errors() == []


def test_a_q2_timeout_below_the_task_budget_or_a_retry_below_the_timeout_fails_the_check(settings):
    settings.Q_CLUSTER = {**django_settings.Q_CLUSTER, "timeout": 60, "retry": 120}
    assert hookhub_errors() == ["hookhub.E002"]
    settings.Q_CLUSTER = {**django_settings.Q_CLUSTER, "timeout": 90, "retry": 90}
    assert hookhub_errors() == ["hookhub.E003"]


@pytest.mark.parametrize("command", ["check", "qcluster"])
def test_manage_py_refuses_to_start_with_a_short_lease(command):
    env = {"DJANGO_SETTINGS_MODULE": "config.settings_test", "HUB_DELIVERY_LEASE_SECONDS": "20", "PATH": ""}
    result = subprocess.run(
        [sys.executable, "manage.py", command],
        cwd=django_settings.BASE_DIR,
        env={**env, "DATABASE_URL": "sqlite:///:memory:"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "hookhub.E001" in result.stderr
    assert "HUB_DELIVERY_LEASE_SECONDS is 20 s; it must be above 35 s" in result.stderr


# ------------------------------------------------------------------ graceful stop, in-process


def test_a_stop_asked_during_a_request_finishes_it_and_gives_the_rest_back(
    brand, httpserver, receiver_url, monkeypatch
):
    def answer_then_stop(request):
        monkeypatch.setattr(stopping, "_signalled", True)  # SIGTERM arrives while this request is answered
        return Response('{"id": "crm-1"}', status=201, content_type="application/json")

    httpserver.expect_request("/people").respond_with_handler(answer_then_stop)
    make_sync(brand, receiver_url)
    for _ in range(4):
        factories.customer(brand)
    queue_purge()

    assert run.deliveries_run() == 1
    assert len(httpserver.log) == 1
    states = [(d.state, d.attempts, d.lease_expires_at) for d in deliveries()]
    assert states[0][:2] == ("delivered", 1)
    assert states[1:] == [("pending", 0, None)] * 3
    assert queued() == 1  # handed on: another worker takes them at once
    assert run.deliveries_run() == 0  # a stopping worker claims nothing more


# ------------------------------------------------------------------ the sweeper's wake-up


def test_the_wake_up_asks_for_one_task_however_many_clusters_poll(brand):
    assert run.deliveries_wake() is False  # nothing due: no task, no write
    assert queued() == 0
    due(brand)
    queue_purge()
    outbox.delivery_task_started()
    for _ in range(10):  # ten clusters' sweepers in the same second
        assert run.deliveries_wake() is True
    assert queued() == 1
    outbox.delivery_task_started()  # a worker took it; the delivery is still due
    run.deliveries_wake()
    assert queued() == 2


def test_anything_due_sees_expired_leases_and_skips_live_ones(brand):
    delivery = due(brand)
    (claimed,) = claim.deliveries_claim()
    assert claimed.pk == delivery.pk
    assert claim.anything_due() is False
    Delivery.objects.filter(pk=delivery.pk).update(lease_expires_at=claimed.lease_expires_at.replace(year=2000))
    assert claim.anything_due() is True
