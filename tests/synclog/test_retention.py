"""Log retention: every log table loses its rows past retention and keeps the newer ones."""

from datetime import timedelta

import pytest
from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule

from hooks.sources.models import LookupSource, SourceCall
from synclog import services
from synclog.models import DeliveryAttempt, InboundRequest
from synclog.services import logs_purge
from tests.synclog import factories

pytestmark = pytest.mark.django_db


def _row(brand, age_days):
    return InboundRequest(
        brand=brand,
        endpoint="omnidesk.lookup",
        path="/hooks/omnidesk/acme/customerlookup",
        status=200,
        latency_ms=1.0,
        created_at=timezone.now() - timedelta(days=age_days),
    )


def inbound_rows(brand, ages):
    return [factories.inbound(brand, ago=timedelta(days=age)) for age in ages]


def attempt_rows(brand, ages):
    delivery = factories.delivery(brand)
    return [factories.attempt(delivery, ago=timedelta(days=age), number=n) for n, age in enumerate(ages, 1)]


def source_call_rows(brand, ages):
    source, _ = LookupSource.objects.get_or_create(
        brand=brand, name="CRM", defaults={"url": "https://crm.example/c?phone={{ phone }}"}
    )
    return [
        SourceCall.objects.create(
            brand=brand,
            source=source,
            source_name=source.name,
            started_at=timezone.now() - timedelta(days=age),
            duration_ms=1.0,
            reason="lookup",
            key_kind="phone",
            key_value="+31612345678",
            method="GET",
            url=source.url,
        )
        for age in ages
    ]


# Every log model the purge covers, with how to make its rows at a given age.
LOG_ROWS = {InboundRequest: inbound_rows, DeliveryAttempt: attempt_rows, SourceCall: source_call_rows}
# Append-only logs outside synclog (lookup source calls live with their sources).
OTHER_LOGS = {"sources.SourceCall"}


def test_every_log_model_is_retained_and_every_retained_log_has_a_test():
    log_models = {model._meta.label for model in apps.get_app_config("synclog").get_models()} | OTHER_LOGS
    assert {label for label, _ in services.RETAINED_LOGS} == log_models
    assert {model._meta.label for model in LOG_ROWS} == log_models


@pytest.mark.parametrize("model", LOG_ROWS, ids=lambda model: model.__name__)
def test_purge_deletes_old_rows_of_each_log_and_keeps_new_ones(brand, settings, model):
    settings.SYNCLOG_RETENTION_DAYS = 30
    old = LOG_ROWS[model](brand, [31, 45, 400])
    new = LOG_ROWS[model](brand, [29, 1, 0])
    result = logs_purge(pause=0)
    assert result[model._meta.label] == 3
    assert set(model.objects.values_list("pk", flat=True)) == {row.pk for row in new}
    assert not model.objects.filter(pk__in=[row.pk for row in old]).exists()


def test_purge_deletes_only_rows_past_retention_in_batches(brand, settings):
    settings.SYNCLOG_RETENTION_DAYS = 90
    InboundRequest.objects.bulk_create([_row(brand, 91) for _ in range(25)] + [_row(brand, 89) for _ in range(3)])
    result = logs_purge(batch_size=10, pause=0)
    assert result["synclog.InboundRequest"] == 25
    assert InboundRequest.objects.count() == 3
    assert logs_purge(batch_size=10, pause=0)["synclog.InboundRequest"] == 0


@pytest.mark.parametrize(
    ("retained", "error"),
    [
        ([("synclog.InboundRequest", "created_at"), ("synclog.DeliveryAttempt", "start_at")], FieldDoesNotExist),
        ([("synclog.InboundRequest", "created_at"), ("synclog.DeliveryAttempts", "started_at")], LookupError),
        ([("synclog.InboundRequest", "created_at"), ("synclog.DeliveryAttempt", "number")], TypeError),
    ],
)
def test_a_misspelt_retained_log_fails_loudly_before_deleting_anything(brand, monkeypatch, retained, error):
    inbound_rows(brand, [400])
    monkeypatch.setattr(services, "RETAINED_LOGS", retained)
    with pytest.raises(error):
        logs_purge(older_than_days=30, pause=0)
    assert InboundRequest.objects.count() == 1


def test_purge_command_and_schedule(brand, capsys):
    InboundRequest.objects.bulk_create([_row(brand, 10), _row(brand, 1)])
    delivery = factories.delivery(brand)
    factories.attempt(delivery, ago=timedelta(days=10))
    factories.attempt(delivery, ago=timedelta(days=1), number=2)
    call_command("purge_logs", "--days", "5")
    out = capsys.readouterr().out
    assert "synclog.InboundRequest: 1 deleted" in out
    assert "synclog.DeliveryAttempt: 1 deleted" in out
    assert InboundRequest.objects.count() == 1
    assert list(DeliveryAttempt.objects.values_list("number", flat=True)) == [2]
    schedule = Schedule.objects.get(name="hookhub: purge old logs")
    assert (schedule.func, schedule.schedule_type) == ("synclog.tasks.purge_old_logs", Schedule.DAILY)
