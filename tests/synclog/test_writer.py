"""The buffered request-log writer: rows written in bulk, failures never raised."""

from __future__ import annotations

import pytest
from django.utils import timezone

from hub.models import Credential
from synclog import writer
from synclog.models import InboundRequest
from tests.factories import credential


def row(brand, n: int) -> dict:
    return {
        "brand_id": brand.pk,
        "endpoint": "omnidesk.lookup",
        "method": "GET",
        "path": "/hooks/omnidesk/acme/customerlookup",
        "query": "key=********&primaryID=" + str(n),
        "credential_prefix": "hh_abcdefg",
        "status": 200,
        "latency_ms": 1.5,
        "customers_returned": 1,
        "customer_id": None,
        "remote_addr": "127.0.0.1",
        "request_body": "",
        "response_body": "",
        "note": f"ticketID={n}",
        "created_at": timezone.now(),
    }


@pytest.mark.django_db
def test_rows_are_buffered_and_written_in_bulk(brand, settings, monkeypatch):
    settings.SYNCLOG_FLUSH_INTERVAL = 60
    monkeypatch.setattr(writer, "_ensure_thread", lambda: None)  # flush by hand
    credential(brand, "omnidesk")
    cred = Credential.objects.get()
    used_at = timezone.now()
    for n in range(250):
        writer.record(row(brand, n), credential_id=cred.pk if n == 0 else None, used_at=used_at)
    assert InboundRequest.objects.count() == 0
    assert writer.flush() == 250
    assert InboundRequest.objects.count() == 250
    assert sorted(InboundRequest.objects.values_list("note", flat=True))[:2] == ["ticketID=0", "ticketID=1"]
    assert Credential.objects.get().last_used_at == used_at
    assert writer.flush() == 0


@pytest.mark.django_db
def test_a_failed_write_is_logged_not_raised(brand, settings, monkeypatch, caplog):
    settings.SYNCLOG_FLUSH_INTERVAL = 60
    monkeypatch.setattr(writer, "_ensure_thread", lambda: None)
    bad = row(brand, 1)
    bad["status"] = "not a number"
    writer.record(bad)
    assert writer.flush() == 0
    assert "Could not write 1 inbound request log rows" in caplog.text


@pytest.mark.django_db
def test_model_instances_are_accepted(brand):
    writer.record(InboundRequest(**row(brand, 7)))
    assert InboundRequest.objects.get().note == "ticketID=7"


@pytest.mark.django_db
def test_rows_are_kept_while_the_database_is_away(brand, settings, monkeypatch):
    from django.db import OperationalError

    settings.SYNCLOG_FLUSH_INTERVAL = 60
    monkeypatch.setattr(writer, "_ensure_thread", lambda: None)
    monkeypatch.setattr(writer.connection, "close", lambda: None)  # keep the test's transaction
    real_copy, real_bulk = writer._copy, InboundRequest.objects.bulk_create
    calls = {"n": 0}

    def down_once(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return (real_copy if args and isinstance(args[0][0], dict) else real_bulk)(*args, **kwargs)

    monkeypatch.setattr(writer, "_copy", down_once)
    monkeypatch.setattr(InboundRequest.objects, "bulk_create", down_once)
    for n in range(3):
        writer.record(row(brand, n))
    assert writer.flush() == 0
    assert InboundRequest.objects.count() == 0
    assert writer.flush() == 3
    assert sorted(InboundRequest.objects.values_list("note", flat=True)) == ["ticketID=0", "ticketID=1", "ticketID=2"]
