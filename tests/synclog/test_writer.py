"""The buffered request-log writer: rows written in bulk, failures never raised."""

from __future__ import annotations

import time

import pytest
from django.test import Client
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


@pytest.fixture
def buffered(settings, monkeypatch):
    """Rows wait in the buffer until the test flushes by hand (no thread)."""
    settings.SYNCLOG_FLUSH_INTERVAL = 60
    monkeypatch.setattr(writer, "_ensure_thread", lambda: None)


@pytest.mark.django_db
def test_a_bad_row_is_dropped_counted_and_logged_its_neighbours_written(brand, buffered, caplog):
    before = writer.dropped_total()
    rows = [row(brand, n) for n in range(5)]
    rows[2]["status"] = "not a number"
    for item in rows:
        writer.record(item)
    assert writer.flush() == 4
    assert sorted(InboundRequest.objects.values_list("note", flat=True)) == [
        "ticketID=0",
        "ticketID=1",
        "ticketID=3",
        "ticketID=4",
    ]
    assert writer.dropped_total() == before + 1
    assert "Dropped 1 inbound request log row(s) the database refused; wrote 4 others" in caplog.text
    assert "GET '/hooks/omnidesk/acme/customerlookup' status not a number" in caplog.text


@pytest.mark.django_db
def test_a_lone_refused_row_is_dropped_and_counted_never_raised(brand, caplog):
    """SYNCLOG_FLUSH_INTERVAL = 0 (the test settings): each row is written at once, alone."""
    before = writer.dropped_total()
    bad = row(brand, 1)
    bad["status"] = "not a number"
    writer.record(bad)  # returns: the lookup that logged it is never failed by its log
    assert writer.dropped_total() == before + 1
    assert "Dropped 1 inbound request log row(s) the database refused; wrote 0 others" in caplog.text


NUL_PATH = "/hooks/omnidesk/ac\x00me/customerlookup"


@pytest.mark.django_db
def test_a_nul_row_is_stored_escaped_with_its_neighbours_in_one_batch(brand, buffered):
    """The row PostgreSQL's COPY refused, taking every buffered row with it (issue 9)."""
    before = writer.dropped_total()
    hostile = {
        **row(brand, 99),
        "path": NUL_PATH,
        "query": "key=********&primaryID=\x00",
        "request_body": '{"a": "\x00"}',
        "response_body": "\x00",
        "note": "ticket\x00ID",
        "remote_addr": "127.0.0.1\x00",
        "endpoint": "omnidesk.lookup\ud800",  # a lone surrogate: PostgreSQL's UTF-8 cannot hold it either
    }
    for item in [row(brand, 1), row(brand, 2), hostile, row(brand, 3), row(brand, 4)]:
        writer.record(item)
    assert writer.flush() == 5
    assert InboundRequest.objects.count() == 5
    stored = InboundRequest.objects.get(status=200, latency_ms=1.5, note__startswith="ticket\\u0000")
    assert (stored.path, stored.query, stored.request_body, stored.response_body, stored.note, stored.remote_addr) == (
        "/hooks/omnidesk/ac\\u0000me/customerlookup",
        "key=********&primaryID=\\u0000",
        '{"a": "\\u0000"}',
        "\\u0000",
        "ticket\\u0000ID",
        "127.0.0.1\\u0000",
    )
    assert stored.endpoint == "omnidesk.lookup\\ud800"
    assert writer.dropped_total() == before


@pytest.mark.django_db
def test_escaping_keeps_a_full_length_value_within_its_column(brand, buffered):
    path_field = InboundRequest._meta.get_field("path")
    writer.record({**row(brand, 1), "path": "/" + "\x00" * (path_field.max_length - 1)})
    assert writer.flush() == 1
    stored = InboundRequest.objects.get().path
    assert len(stored) == path_field.max_length and stored.startswith("/\\u0000\\u0000")


@pytest.mark.django_db
def test_nul_path_lookup_and_its_neighbours_are_all_logged(brand, buffered):
    """Through HTTP: good lookups around one whose path holds a NUL, in one buffered batch.
    The NUL call is answered 404 (no such brand) and logged with its path as sent
    (percent-encoded), and the good ones are never lost with it."""
    key = credential(brand, "omnidesk")
    client = Client(raise_request_exception=False)
    paths = ["/hooks/omnidesk/acme/customerlookup", "/hooks/omnidesk/ac%00me/customerlookup"]
    answered = [client.get(path, {"key": key, "primaryID": "1"}).status_code for path in [paths[0], paths[1], paths[0]]]
    assert answered[0] == answered[2] == 200
    assert InboundRequest.objects.count() == 0
    assert writer.flush() == 3
    logged = list(InboundRequest.objects.order_by("pk").values_list("path", "status", "query"))
    assert [(path, status) for path, status, _ in logged] == [
        (paths[0], 200),
        (paths[1], 404),
        (paths[0], 200),
    ]
    assert all(key not in query for _, _, query in logged)


@pytest.mark.django_db
def test_when_the_database_goes_away_midway_only_unwritten_rows_are_kept(brand, buffered, monkeypatch):
    from django.db import OperationalError

    monkeypatch.setattr(writer.connection, "close", lambda: None)  # keep the test's transaction
    real_insert = writer._insert
    calls = []

    def flaky(rows):
        calls.append(len(rows))
        if len(calls) == 1:
            raise ValueError("the batch is refused")
        if len(calls) == 3:
            raise OperationalError("server closed the connection unexpectedly")
        return real_insert(rows)

    monkeypatch.setattr(writer, "_insert", flaky)
    for n in range(3):
        writer.record(row(brand, n))
    assert writer.flush() == 1  # row 0 written one by one, then the database went away
    assert list(InboundRequest.objects.values_list("note", flat=True)) == ["ticketID=0"]
    assert writer.flush() == 2
    assert sorted(InboundRequest.objects.values_list("note", flat=True)) == ["ticketID=0", "ticketID=1", "ticketID=2"]
    assert calls == [3, 1, 1, 2]


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


@pytest.fixture
def writer_thread(settings):
    """The production default: a background thread flushing every SYNCLOG_FLUSH_INTERVAL
    seconds. Stopped (and checked to stop) after the test."""
    settings.SYNCLOG_FLUSH_INTERVAL = 0.05
    assert writer._thread is None or not writer._thread.is_alive()
    yield
    assert writer.stop(timeout=10)


def wait_for(count: int, *, seconds: float = 10.0) -> int:
    deadline = time.monotonic() + seconds
    while (found := InboundRequest.objects.count()) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return found


@pytest.mark.django_db(transaction=True)  # the thread writes on its own connection: commits must be visible
def test_the_background_thread_writes_lookups_and_stops_cleanly(brand, writer_thread):
    key = credential(brand, "omnidesk")
    client = Client()
    for n in range(5):
        assert client.get("/hooks/omnidesk/acme/customerlookup", {"key": key, "primaryID": str(n)}).status_code == 200
    assert writer._thread is not None and writer._thread.is_alive()
    assert wait_for(5) == 5
    assert Credential.objects.get().last_used_at is not None
    thread = writer._thread
    assert writer.stop(timeout=10)
    assert not thread.is_alive() and writer._thread is None
    # A later call starts a new thread.
    assert client.get("/hooks/omnidesk/acme/customerlookup", {"key": key, "primaryID": "9"}).status_code == 200
    assert writer._thread is not None and writer._thread is not thread
    assert wait_for(6) == 6


@pytest.mark.django_db(transaction=True)
def test_stopping_the_thread_writes_what_is_still_queued(brand, writer_thread, settings):
    settings.SYNCLOG_FLUSH_INTERVAL = 30  # the thread would not flush on its own during the test
    for n in range(3):
        writer.record(row(brand, n))
    time.sleep(0.1)
    assert InboundRequest.objects.count() == 0
    started = time.monotonic()
    assert writer.stop(timeout=10)
    assert time.monotonic() - started < 5  # the stop wakes the thread; it does not wait out the interval
    assert InboundRequest.objects.count() == 3
