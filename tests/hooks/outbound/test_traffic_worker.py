"""The rate limit across real workers: two ``manage.py qcluster`` processes
(two workers each) send to one CRM limited to 5 requests per second; the
receiver on 127.0.0.1 records arrival times and client ports. Bounded: every
wait has a deadline and the clusters are killed on the way out."""

from __future__ import annotations

import threading
import time

import pytest
from werkzeug import Response

from hooks.outbound.engine import outbox, traffic
from hooks.outbound.models import CrmSyncAction, Delivery
from tests import factories

from .conftest import make_sync
from .test_worker import SharedDatabase, kill, start_worker, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

RATE = 5
COUNT = 20


def test_a_rate_limit_of_5_per_second_holds_across_two_clusters(brand, httpserver, tmp_path):
    arrivals: list[tuple[float, int]] = []
    lock = threading.Lock()

    def handler(request):
        with lock:
            arrivals.append((time.time(), int(request.environ.get("REMOTE_PORT", 0))))
        return Response('{"id": "crm-1"}', status=201, content_type="application/json")

    httpserver.expect_request("/people", method="POST").respond_with_handler(handler)
    sync = make_sync(brand, httpserver.url_for("").rstrip("/"))
    CrmSyncAction.objects.filter(sync=sync).update(rate_limit_per_second=RATE)
    for number in range(COUNT):
        factories.customer(brand, first_name=f"Rate{number}")
    ids = list(Delivery.objects.order_by("pk").values_list("pk", flat=True))
    for start in range(0, COUNT, 5):  # several tasks, so both clusters' workers send at once
        outbox.deliveries_enqueue(ids=ids[start : start + 5], force=True)
    database = SharedDatabase(tmp_path)
    database.push()

    clusters = [start_worker(database), start_worker(database)]
    try:
        wait_for(
            lambda: Delivery.objects.filter(state="delivered").count() == COUNT, "every delivery delivered", database
        )
    finally:
        for cluster in clusters:
            kill(cluster)

    times = sorted(at for at, _ in arrivals)
    assert len(times) == COUNT
    assert len({port for _, port in arrivals}) >= 2, "only one worker sent: the test proves nothing"
    per_second: dict[int, int] = {}
    for at in times:
        per_second[int(at - times[0])] = per_second.get(int(at - times[0]), 0) + 1
    # Any RATE + 1 consecutive arrivals span at least a second (less 0.1 s of scheduling jitter).
    spans = [times[i + RATE] - times[i] for i in range(len(times) - RATE)]
    assert min(spans) >= 0.9, f"{RATE + 1} requests within {min(spans):.2f} s; per second: {per_second}"
    assert max(per_second.values()) <= RATE + 1, per_second
    # The documented bound (docs/outbound-webhooks.md): any n consecutive requests span at least
    # (n - 1)/rate - 50 ms (tolerance and lateness), less 0.1 s of scheduling jitter at the receiver.
    slack = traffic.TOLERANCE_SECONDS + traffic.LATE_SECONDS + 0.1
    short = [(j - i, times[j] - times[i]) for i in range(COUNT) for j in range(i + 1, COUNT)]
    assert all(span >= n / RATE - slack for n, span in short), min(short, key=lambda p: p[1] - p[0] / RATE)
    assert not Delivery.objects.filter(attempts__gt=1).exists()  # waiting for a slot is not an attempt
