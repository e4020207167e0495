from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule

from synclog.models import InboundRequest
from synclog.services import logs_purge

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


def test_purge_deletes_only_rows_past_retention_in_batches(brand, settings):
    settings.SYNCLOG_RETENTION_DAYS = 90
    InboundRequest.objects.bulk_create([_row(brand, 91) for _ in range(25)] + [_row(brand, 89) for _ in range(3)])
    result = logs_purge(batch_size=10, pause=0)
    assert result["synclog.InboundRequest"] == 25
    assert InboundRequest.objects.count() == 3
    assert logs_purge(batch_size=10, pause=0)["synclog.InboundRequest"] == 0


def test_purge_command_and_schedule(brand, capsys):
    InboundRequest.objects.bulk_create([_row(brand, 10), _row(brand, 1)])
    call_command("purge_logs", "--days", "5")
    assert "synclog.InboundRequest: 1 deleted" in capsys.readouterr().out
    assert InboundRequest.objects.count() == 1
    schedule = Schedule.objects.get(name="hookhub: purge old logs")
    assert (schedule.func, schedule.schedule_type) == ("synclog.tasks.purge_old_logs", Schedule.DAILY)
