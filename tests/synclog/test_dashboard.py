from datetime import timedelta

import pytest
from django.utils import timezone

from hub.models import Membership, Role
from synclog.models import InboundRequest
from tests import factories

pytestmark = pytest.mark.django_db


def _calls(brand, statuses, hours_ago=1):
    InboundRequest.objects.bulk_create(
        InboundRequest(
            brand=brand,
            endpoint="omnidesk.lookup",
            path="/hooks/omnidesk/x/customerlookup",
            status=status,
            latency_ms=3.5,
            created_at=timezone.now() - timedelta(hours=hours_ago),
        )
        for status in statuses
    )


def test_dashboard_shows_brand_traffic_and_success_rate(client, brand, other_brand):
    _calls(brand, [200, 200, 200, 403])
    _calls(other_brand, [500] * 7)
    auditor = factories.member(brand, Role.AUDITOR, username="audrey")
    client.force_login(auditor)
    response = client.get("/admin/dashboard/acme/?range=24h")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Inbound calls — 4 in range, 75.0% successful" in html
    assert "<svg" in html and "hh-failed" in html
    assert "omnidesk.lookup" in html
    assert client.get("/admin/dashboard/globex/").status_code == 404


def test_dashboard_home_picks_the_first_brand_and_needs_login(client, brand):
    assert client.get("/admin/dashboard/").status_code == 302
    client.force_login(factories.member(brand, Role.ADMIN, username="ada"))
    response = client.get("/admin/dashboard/")
    assert response.status_code == 200
    assert "Dashboard — Acme" in response.content.decode()


def test_admin_index_shows_start_here_with_the_users_brands(client, brand, other_brand):
    client.force_login(factories.member(brand, Role.AUDITOR, username="ann"))
    html = client.get("/admin/").content.decode()
    assert "Start here" in html
    assert "/admin/dashboard/acme/" in html
    assert "/admin/dashboard/globex/" not in html


def test_start_here_shows_each_role_and_offers_next_steps_only_to_admins(client, brand, other_brand):
    sam = factories.member(brand, Role.ADMIN, username="sam")
    Membership.objects.create(user=sam, brand=other_brand, role=Role.AUDITOR)
    client.force_login(sam)
    html = client.get("/admin/").content.decode()
    assert "<td>admin</td>" in html and "<td>auditor</td>" in html
    assert f"/admin/logs/?brand={brand.pk}" in html
    assert 'id="hookhub-next-steps"' in html

    client.force_login(factories.member(brand, Role.AUDITOR, username="ann"))
    html = client.get("/admin/").content.decode()
    assert "<td>auditor</td>" in html
    assert 'id="hookhub-next-steps"' not in html
    assert "Nothing is configured for your brands yet" in html


def test_admin_index_for_an_empty_hub_explains_how_to_start(admin_client):
    html = admin_client.get("/admin/").content.decode()
    assert "No brand yet" in html
    assert "/admin/hub/brand/add/" in html


# ------------------------------------------------------------ the outbound half, and where every link lands


def _hrefs(html: str) -> list[str]:
    import re

    body = html[html.index('id="hh-dashboard"') :]
    return [href.replace("&amp;", "&") for href in re.findall(r'href="([^"]+)"', body)]


@pytest.fixture
def traffic(brand, other_brand):
    from tests.synclog import factories as logs

    crm = logs.delivery(brand, source_id=11, source_name="Acme CRM — Create Users", state="failed", attempts=3)
    rule = logs.delivery(
        brand, source_kind="rule", source_id=5, source_name="Slack on abandon", state="pending", attempts=1
    )
    fresh = logs.delivery(brand, source_id=11, source_name="Acme CRM — Create Users", state="pending")  # not tried yet
    done = logs.delivery(brand, source_kind="rule", source_id=6, source_name="Fast rule", state="delivered", attempts=1)
    foreign = logs.delivery(other_brand, source_name="Globex CRM", state="failed", attempts=1)
    rows = {
        "crm": [logs.attempt(crm, status=500, number=n, ago=timedelta(hours=n), duration_ms=900.0) for n in (1, 2, 3)],
        "rule": [logs.attempt(rule, status=None, error="Timed out", ago=timedelta(hours=2), duration_ms=10_000.0)],
        "done": [logs.attempt(done, status=200, ago=timedelta(hours=1), duration_ms=50.0)],
        "foreign": [logs.attempt(foreign, status=500)],
        "inbound": [
            logs.inbound(brand, endpoint="m8com.lookup", status=200, latency_ms=40.0),
            logs.inbound(brand, endpoint="m8com.lookup", status=503, latency_ms=60.0),
            logs.inbound(brand, endpoint="omnidesk.lookup", status=200, latency_ms=2.0),
            logs.inbound(brand, endpoint="omnidesk.lookup", status=200, ago=timedelta(days=20)),  # outside 7d
            logs.inbound(other_brand, endpoint="m8com.lookup", status=200),
        ],
    }
    return {"deliveries": {"crm": crm, "rule": rule, "fresh": fresh, "done": done}, **rows}


def test_dashboard_shows_the_outbound_half(client, brand, traffic):
    client.force_login(factories.member(brand, Role.AUDITOR, username="audrey"))
    html = client.get("/admin/dashboard/acme/?range=7d").content.decode()
    assert "Outbound delivery attempts — 5 in range, 20.0% successful" in html
    assert "1 delivery waiting to retry" in html  # the rule's pending retry; the untried one is not "waiting to retry"
    assert "1 failed delivery" in html
    failing = html[html.index('id="hh-failing"') :]
    assert "Acme CRM — Create Users" in failing and "Globex" not in failing
    slowest = html[html.index('id="hh-slowest-outbound"') : html.index('id="hh-failing"')]
    assert slowest.index("Slack on abandon") < slowest.index("Acme CRM — Create Users") < slowest.index("Fast rule")
    assert "10000.0" in slowest
    inbound = html[html.index('id="hh-slowest"') : html.index('id="hh-slowest-outbound"')]
    assert inbound.index("m8com.lookup") < inbound.index("omnidesk.lookup")


def test_every_dashboard_link_lands_on_a_correctly_filtered_list(client, brand, traffic):
    client.force_login(factories.member(brand, Role.AUDITOR, username="audrey"))
    html = client.get("/admin/dashboard/acme/?range=7d").content.decode()
    links = [href for href in _hrefs(html) if not href.startswith("?range=")]
    assert len(links) >= 12
    for link in links:
        response = client.get(link)
        assert response.status_code == 200, (link, response.status_code, response.get("Location"))
        assert "e=1" not in link

    def landed(link_id):
        before = html[: html.index(f'id="{link_id}"')]
        href = before.rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
        response = client.get(href)
        if "rows" in response.context:
            return {(row.direction, row.pk) for row in response.context["rows"]}
        return {row.pk for row in response.context["cl"].result_list}

    d = traffic["deliveries"]
    assert landed("hh-waiting-link") == {d["rule"].pk}
    assert landed("hh-failed-link") == {d["crm"].pk}
    in_range = {("inbound", row.pk) for row in traffic["inbound"][:3]}
    assert landed("hh-inbound-link") == in_range
    assert landed("hh-inbound-failed-link") == {("inbound", traffic["inbound"][1].pk)}
    outbound = {("outbound", a.pk) for key in ("crm", "rule", "done") for a in traffic[key]}
    assert landed("hh-attempts-link") == outbound
    failed = {("outbound", a.pk) for key in ("crm", "rule") for a in traffic[key]}
    assert landed("hh-attempts-failed-link") == failed
    assert landed("hh-all-logs") == in_range | outbound


def test_table_links_of_the_dashboard_select_their_own_rows(client, brand, traffic):
    client.force_login(factories.member(brand, Role.AUDITOR, username="audrey"))
    response = client.get("/admin/dashboard/acme/?range=7d")
    data = response.context
    rows = lambda link: {(r.direction, r.pk) for r in client.get(link).context["rows"]}  # noqa: E731
    by_endpoint = {row["endpoint"]: row["link"] for row in data["slowest"]}
    assert rows(by_endpoint["m8com.lookup"]) == {("inbound", r.pk) for r in traffic["inbound"][:2]}
    by_source = {row["name"]: row["link"] for row in data["slowest_outbound"]}
    assert rows(by_source["Slack on abandon"]) == {("outbound", traffic["rule"][0].pk)}
    (failing,) = data["failing"]
    deliveries = client.get(failing["link"]).context["cl"].result_list
    assert [x.pk for x in deliveries] == [traffic["deliveries"]["crm"].pk]
    assert rows(failing["attempts_link"]) == {("outbound", a.pk) for a in traffic["crm"]}


def test_the_logs_section_of_the_admin_lists_all_logs_and_the_dashboard(client, brand):
    client.force_login(factories.member(brand, Role.AUDITOR, username="ann"))
    html = client.get("/admin/").content.decode()
    logs_section = html[html.index('class="app-synclog') :]
    logs_section = logs_section[: logs_section.index("</table>")]
    assert '<a href="/admin/logs/"' in logs_section and "All logs (inbound and outbound)" in logs_section
    assert '<a href="/admin/dashboard/"' in logs_section
    assert client.get("/admin/logs/").status_code == 200
    assert "Dashboard — Acme" in client.get("/admin/dashboard/").content.decode()
