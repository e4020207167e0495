"""Destination health in-process, time moved by the ``clock`` fixture: graduated
alerts (e-mail and a signed operational webhook) once per step, recovery,
auto-disable with paused deliveries and re-enable in order, the circuit breaker
against a dead receiver, and tenant isolation of alerts."""

from __future__ import annotations

import json
import re

import pytest
from django.core import mail
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from standardwebhooks.webhooks import Webhook
from werkzeug import Response

from hooks.outbound.engine import claim, health, outbox
from hooks.outbound.models import CrmSyncAction, Delivery, DestinationHealth
from tests import factories

from .conftest import body_of, make_sync, queue_purge
from .conftest import run_all as engine_run_all

pytestmark = pytest.mark.django_db

INTERVAL = 600


_capture = None


@pytest.fixture(autouse=True)
def on_commit_runs(django_capture_on_commit_callbacks):
    """The test's transaction never commits: run the engine's on-commit work (alert e-mails) as a commit would."""
    global _capture
    _capture = django_capture_on_commit_callbacks
    yield
    _capture = None


def run_all() -> None:
    assert _capture is not None
    with _capture(execute=True):
        engine_run_all()


@pytest.fixture(autouse=True)
def engine_settings(settings):
    queue_purge()
    settings.HUB_RETRY_INTERVAL_SECONDS = INTERVAL
    settings.HUB_HEALTH_ALERT_THRESHOLD = 10
    settings.HUB_HEALTH_ALERT_AFTER_SECONDS = 0
    settings.HUB_HEALTH_DISABLE_AFTER_SECONDS = 0
    yield settings
    queue_purge()


class Crm:
    """A local CRM: /people answers ``status`` (a list of created names is kept); /ops is the operational webhook."""

    def __init__(self, httpserver):
        self.status = 503
        self.names: list[str] = []
        self.ops: list[dict] = []
        self.secret = ""
        httpserver.expect_request("/people", method="POST").respond_with_handler(self.people)
        httpserver.expect_request("/ops", method="POST").respond_with_handler(self.operational)

    def people(self, request):
        if self.status < 300:
            self.names.append(body_of(request)["first_name"])
            return Response(json.dumps({"id": f"r{len(self.names)}"}), status=201, content_type="application/json")
        return Response("down", status=self.status)

    def operational(self, request):
        # A forged or unsigned POST raises here and the test sees no event.
        self.ops.append(Webhook(self.secret).verify(request.get_data(as_text=True), dict(request.headers)))
        return Response("", status=204)

    def people_requests(self, httpserver) -> int:
        return sum(1 for request, _ in httpserver.log if request.path == "/people")


def make_create_only(brand, url: str, **kwargs):
    sync = make_sync(brand, url, **kwargs)
    CrmSyncAction.objects.filter(sync=sync).exclude(action="create").update(enabled=False)
    return sync, CrmSyncAction.objects.get(sync=sync, action="create")


def probe_round(clock) -> None:
    clock.advance(seconds=INTERVAL)
    run_all()


def test_alerts_once_per_step_by_mail_and_signed_webhook_then_recovered(brand, other_brand, httpserver, clock):
    crm = Crm(httpserver)
    crm.secret = health.operational_webhook_set(brand_id=brand.pk, url=httpserver.url_for("/ops"))
    admin = factories.member(brand, username="acme-admin")
    factories.member(brand, role="auditor", username="acme-auditor")
    factories.member(other_brand, username="globex-admin")
    health.operational_webhook_set(brand_id=other_brand.pk, url=httpserver.url_for("/ops-globex"))
    _sync, action = make_create_only(brand, httpserver.url_for("").rstrip("/"))
    for n in range(3):
        factories.customer(brand, first_name=f"P{n}")

    run_all()
    mails_after = []
    for _ in range(11):
        mails_after.append(len(mail.outbox))
        probe_round(clock)
    row = DestinationHealth.objects.get(source_kind="crm_action", source_id=action.pk)
    assert (row.state, row.consecutive_failures) == ("failing", 12)
    # Threshold 10: steps at 5, 7, 9 and 10 consecutive failures, each told once.
    assert mails_after == [0, 0, 0, 0, 1, 1, 2, 2, 3, 4, 4]
    assert len(mail.outbox) == 4
    assert {tuple(m.to) for m in mail.outbox} == {(admin.email,)}  # no auditor, no other brand
    assert "CRM — Create Users is failing (5 failures in a row)" in mail.outbox[0].subject
    assert [(e["type"], e["data"]["consecutive_failures"]) for e in crm.ops] == [
        ("destination.failing", 5),
        ("destination.failing", 7),
        ("destination.failing", 9),
        ("destination.failing", 10),
    ]
    event = crm.ops[0]["data"]
    assert event["destination"]["name"] == "CRM — Create Users"
    assert event["destination"]["kind"] == "crm_sync_action"
    assert event["destination"]["admin_url"].endswith(f"/admin/outbound/crmsync/{action.sync_id}/change/")
    assert event["last_error"] == "HTTP 503" and event["first_failure_at"]
    # One probe at a time: 12 requests for 3 deliveries; the two behind it never attempted.
    assert crm.people_requests(httpserver) == 12
    assert list(
        Delivery.objects.filter(source_kind="crm_action", source_id=action.pk)
        .order_by("pk")
        .values_list("attempts", flat=True)
    ) == [
        12,
        0,
        0,
    ]

    crm.status = 201
    probe_round(clock)
    assert crm.names == ["P0", "P1", "P2"]  # the probe succeeded; the rest flowed at once, in order
    assert [e["type"] for e in crm.ops][-1] == "destination.recovered"
    assert len(mail.outbox) == 5 and "has recovered" in mail.outbox[-1].subject
    row.refresh_from_db()
    assert (row.state, row.consecutive_failures, row.alert_step) == ("healthy", 0, 0)
    assert not [r for r, _ in httpserver.log if r.path == "/ops-globex"]  # brand B's hook heard nothing


def test_operational_webhook_to_a_dead_receiver_does_not_alert_about_itself(brand, httpserver, clock):
    crm = Crm(httpserver)
    health.operational_webhook_set(brand_id=brand.pk, url="http://127.0.0.1:9/ops")  # closed port
    factories.member(brand)
    _sync, action = make_create_only(brand, httpserver.url_for("").rstrip("/"))
    factories.customer(brand)
    for _ in range(12):
        probe_round(clock)
    ops = Delivery.objects.filter(source_kind="ops_webhook")
    assert ops.count() == 4 and not ops.filter(state="delivered").exists()
    assert list(DestinationHealth.objects.values_list("source_kind", flat=True)) == ["crm_action"]
    assert len(mail.outbox) == 4
    assert crm.names == []


def test_auto_disable_pauses_deliveries_and_reenable_sends_them_in_order(brand, httpserver, clock, settings):
    settings.HUB_HEALTH_DISABLE_AFTER_SECONDS = 3 * INTERVAL
    settings.HUB_RETRY_WINDOW_SECONDS = 2 * INTERVAL  # paused deliveries must not fail by their window
    crm = Crm(httpserver)
    crm.secret = health.operational_webhook_set(brand_id=brand.pk, url=httpserver.url_for("/ops"))
    factories.member(brand)
    _sync, action = make_create_only(brand, httpserver.url_for("").rstrip("/"))
    for n in range(4):
        factories.customer(brand, first_name=f"C{n}")
    run_all()
    for _ in range(4):
        probe_round(clock)
    row = DestinationHealth.objects.get(source_id=action.pk)
    assert row.state == "disabled" and row.disabled_reason.startswith("Failed continuously for 30 minutes")
    action.refresh_from_db()
    assert action.enabled is False
    states = list(
        Delivery.objects.filter(source_kind="crm_action", source_id=action.pk)
        .order_by("pk")
        .values_list("state", flat=True)
    )
    # The window (2 intervals) ran out for the first probe, then for the next one at its single attempt
    # (the engine's rule for a delivery that waited past its deadline); at 30 minutes the rest is paused.
    assert states == ["failed", "failed", "paused", "paused"]
    assert "destination.disabled" in [e["type"] for e in crm.ops]
    assert any("was disabled" in m.subject for m in mail.outbox)

    clock.advance(days=3)  # paused for days: nothing is sent, nothing fails
    requests_before = crm.people_requests(httpserver)
    run_all()
    assert crm.people_requests(httpserver) == requests_before
    assert list(Delivery.objects.filter(state="paused").values_list("source_id", flat=True)) == [action.pk] * 2

    crm.status = 201
    with transaction.atomic():
        resumed = health.destination_reenable(source_kind="crm_action", source_id=action.pk)
    assert resumed == 2
    run_all()
    assert crm.names == ["C2", "C3"]
    action.refresh_from_db()
    row.refresh_from_db()
    assert (action.enabled, row.state) == (True, "healthy")


def test_switching_the_action_on_in_its_form_resumes_paused_deliveries(brand, httpserver, clock, settings):
    settings.HUB_HEALTH_DISABLE_AFTER_SECONDS = INTERVAL
    crm = Crm(httpserver)
    _sync, action = make_create_only(brand, httpserver.url_for("").rstrip("/"))
    for n in range(3):
        factories.customer(brand, first_name=f"F{n}")
    run_all()
    probe_round(clock)
    assert set(Delivery.objects.values_list("state", flat=True)) == {"paused"}
    crm.status = 201
    action.refresh_from_db()
    action.enabled = True
    action.save()  # what the admin form's save does
    run_all()
    assert crm.names == ["F0", "F1", "F2"]


def test_breaker_one_probe_at_a_time_while_another_destination_flows(brand, httpserver, clock):
    crm = Crm(httpserver)
    httpserver.expect_request("/healthy", method="POST").respond_with_data("{}", status=201)
    _sync, dead = make_create_only(brand, httpserver.url_for("").rstrip("/"), name="Dead CRM")
    _other, alive = make_create_only(brand, httpserver.url_for("").rstrip("/"), name="Live CRM")
    CrmSyncAction.objects.filter(pk=alive.pk).update(url=httpserver.url_for("/healthy"))
    for n in range(30):
        factories.customer(brand, first_name=f"B{n}")

    run_all()
    assert crm.people_requests(httpserver) == 1  # 30 due, one request: the breaker opened at once
    assert Delivery.objects.filter(source_kind="crm_action", source_id=alive.pk, state="delivered").count() == 30
    for _ in range(3):
        probe_round(clock)
    assert crm.people_requests(httpserver) == 4
    probe = Delivery.objects.filter(source_kind="crm_action", source_id=dead.pk).order_by("pk").first()
    assert {r.headers["webhook-id"] for r, _ in httpserver.log if r.path == "/people"} == {probe.message_id}

    crm.status = 201
    probe_round(clock)
    assert crm.names == [f"B{n}" for n in range(30)]


def test_the_claim_stays_one_query_with_a_failing_destination(brand, httpserver, clock):
    Crm(httpserver)
    _sync, action = make_create_only(brand, httpserver.url_for("").rstrip("/"))
    for _ in range(5):
        factories.customer(brand)

    def claim_queries() -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            rows = claim.deliveries_claim()
        claim.deliveries_release(deliveries=rows)
        return [q["sql"] for q in captured.captured_queries if q["sql"].lstrip().upper().startswith("SELECT")]

    healthy = claim_queries()
    run_all()  # the first attempt fails: the destination is failing
    clock.advance(seconds=INTERVAL)
    failing = claim_queries()
    assert len(healthy) == len(failing) == 1
    assert "outbound_destinationhealth" in failing[0]


def test_with_the_breaker_off_every_due_delivery_is_tried_and_health_is_still_kept(brand, httpserver, clock, settings):
    """HUB_CIRCUIT_BREAKER=false: the dead CRM gets all 5 due deliveries (no
    probe), each retried on its schedule; the health row and its alerts are
    kept as usual, and the claim query has no breaker filter."""
    settings.HUB_CIRCUIT_BREAKER = False
    crm = Crm(httpserver)
    _sync, action = make_create_only(brand, httpserver.url_for("").rstrip("/"))
    for n in range(5):
        factories.customer(brand, first_name=f"Off{n}")

    run_all()
    assert crm.people_requests(httpserver) == 5
    row = DestinationHealth.objects.get(source_id=action.pk)
    assert (row.state, row.consecutive_failures, row.alert_step) == ("failing", 5, 1)  # 5 of 10: the 50 % alert
    clock.advance(seconds=INTERVAL)
    with CaptureQueriesContext(connection) as captured:
        rows = claim.deliveries_claim()
    assert len(rows) == 5
    claim.deliveries_release(deliveries=rows)
    assert not any("outbound_destinationhealth" in q["sql"] for q in captured.captured_queries)
    run_all()
    assert crm.people_requests(httpserver) == 10


def test_retry_now_probes_at_once(brand, httpserver, clock):
    crm = Crm(httpserver)
    make_create_only(brand, httpserver.url_for("").rstrip("/"))
    factories.customer(brand, first_name="Now")
    run_all()
    crm.status = 201
    run_all()
    assert crm.names == []  # the breaker waits for the probe time
    with transaction.atomic():
        outbox.deliveries_retry_now(delivery_ids=list(Delivery.objects.values_list("pk", flat=True)))
    run_all()
    assert crm.names == ["Now"]


def _disable_after_one_failure(settings, brand, httpserver, clock, n=2):
    settings.HUB_HEALTH_DISABLE_AFTER_SECONDS = INTERVAL
    crm = Crm(httpserver)
    sync, action = make_create_only(brand, httpserver.url_for("").rstrip("/"))
    for i in range(n):
        factories.customer(brand, first_name=f"A{i}")
    run_all()
    probe_round(clock)
    assert DestinationHealth.objects.get(source_id=action.pk).state == "disabled"
    return crm, sync, action


def test_admin_lists_and_dashboard_show_health_and_reenable_is_brand_scoped(
    client, brand, other_brand, httpserver, clock, settings
):
    crm, sync, action = _disable_after_one_failure(settings, brand, httpserver, clock)
    other_admin = factories.member(other_brand, username="globex-boss")
    client.force_login(other_admin)
    # Brand B's admin cannot re-enable brand A's sync (the action sees only B's syncs).
    client.post(reverse("admin:outbound_crmsync_changelist"), {"action": "reenable", "_selected_action": [sync.pk]})
    assert DestinationHealth.objects.get(source_id=action.pk).state == "disabled"
    dashboard = client.get(reverse("hub-dashboard", args=[other_brand.slug])).content.decode()
    assert "Every sync and rule is healthy." in dashboard and "CRM — Create Users" not in dashboard

    admin = factories.member(brand, username="acme-boss")
    client.force_login(admin)
    listing = client.get(reverse("admin:outbound_crmsync_changelist")).content.decode()
    assert "Disabled</span> (deliveries paused)" in listing
    dashboard = client.get(reverse("hub-dashboard", args=[brand.slug])).content.decode()
    assert "CRM — Create Users" in dashboard and "Failed continuously for 10 minutes" in dashboard
    link = re.search(r'href="([^"]*state__exact=paused[^"]*)"', dashboard).group(1).replace("&amp;", "&")
    page = client.get(link)
    assert page.status_code == 200  # declared filters only
    assert page.content.decode().count("Paused") >= 2

    crm.status = 201
    response = client.post(
        reverse("admin:outbound_crmsync_changelist"), {"action": "reenable", "_selected_action": [sync.pk]}
    )
    assert response.status_code == 302
    run_all()
    assert crm.names == ["A0", "A1"]
    listing = client.get(reverse("admin:outbound_crmsync_changelist")).content.decode()
    assert ">Healthy</span>" in listing


def test_a_rule_is_tracked_and_its_list_shows_failing(client, brand, httpserver, clock):
    from hooks.rules.models import EventRule
    from hooks.rules.services import rules_dispatch
    from hub.events import Event

    httpserver.expect_request("/rule").respond_with_data("no", status=500)
    rule = EventRule.objects.create(
        brand=brand, name="Ping", enabled=True, event_types=["call.started"], url=httpserver.url_for("/rule")
    )
    for _ in range(3):
        rules_dispatch(Event(brand_id=brand.pk, event_type="call.started", data={}))
    run_all()
    assert sum(1 for r, _ in httpserver.log if r.path == "/rule") == 1
    row = DestinationHealth.objects.get(source_kind="rule", source_id=rule.pk)
    assert (row.state, row.consecutive_failures) == ("failing", 1)
    client.force_login(factories.member(brand))
    listing = client.get(reverse("admin:rules_eventrule_changelist")).content.decode()
    assert "Failing</span>: 1 in a row since" in listing
