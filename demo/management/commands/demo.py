"""Load the demo brand, an admin login and inbound keys; print how to use them.

Idempotent: a second run finds what the first made. The clear keys are kept in
.hookhub/demo-credentials.json (git-ignored, mode 600) so later runs can print
them again; real brands get their keys from the admin or `issue_credential`.
"""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from customers.models import Customer
from customers.services import activity_record, customer_create
from hooks.outbound.crm import crm_sync_set_signing_secret
from hooks.outbound.models import CrmSync, CrmSyncAction
from hooks.rules.models import EventRule
from hooks.rules.services import rule_create, rule_create_from_preset
from hub.models import Brand, Credential, Membership, Role
from hub.services import brand_create, brand_update, credential_issue

DEMO_SLUG = "demo"

CUSTOMERS = [
    {
        "customer_id": "2019000000000124",
        "first_name": "Maria",
        "last_name": "Lukkien",
        "company_name": "Lukkien Design",
        "job_title": "Owner",
        "addresses": [
            {"type": "email", "address": "maria@lukkien.example.org", "comment": "Work"},
            {"type": "telephone", "address": "+31 6 12312312", "comment": "Mobile"},
            {"type": "telephone", "address": "020 123 4567", "comment": "Office"},
            {"type": "facebook", "address": "1022334440541884"},
            {"type": "twitter", "address": "bird_223"},
        ],
        "custom_fields": [{"customerType": "unlimited"}, {"customerSince": "2019-12-24"}, {"favoriteColor": "orange"}],
    },
    {
        "customer_id": "2020000000000311",
        "first_name": "Thomas",
        "last_name": "de Vries",
        "addresses": [
            {"type": "email", "address": "thomas@example.org", "comment": "Personal"},
            {"type": "telephone", "address": "+31612312311"},
            {"type": "whatsapp", "address": "+31612312311"},
        ],
        "custom_fields": [{"customerType": "basic"}, {"customerSince": "2020-03-02"}],
    },
    {
        "customer_id": "2021000000000007",
        "first_name": "Anna",
        "last_name": "Andersson",
        "company_name": "Acme Inc.",
        "job_title": "Insights Engineer",
        "time_zone": "Europe/Stockholm",
        "addresses": [
            {"type": "email", "address": "anna.andersson@acme.example.com", "comment": "Work"},
            {"type": "telephone", "address": "+46 70 123 45 67", "comment": "Work"},
        ],
        "custom_fields": [{"customerType": "enterprise"}],
    },
    {
        "customer_id": "2022000000000042",
        "first_name": "Oliver",
        "last_name": "Smith",
        "addresses": [
            {"type": "email", "address": "oliver.smith@example.co.uk"},
            {"type": "telephone", "address": "+44 7911 123456"},
            {"type": "instagram", "address": "@oliver.bakes"},
        ],
        "custom_fields": [{"customerType": "basic"}, {"newsletter": "yes"}],
    },
    {
        "customer_id": "2023000000000099",
        "first_name": "Fatima",
        "last_name": "El Amrani",
        "company_name": "Amrani Logistics",
        "addresses": [
            {"type": "email", "address": "fatima@amrani-logistics.example.nl", "comment": "Work"},
            {"type": "telephone", "address": "06-87654321", "comment": "Mobile"},
            {"type": "linkedin", "address": "fatima-el-amrani"},
        ],
        "custom_fields": [{"customerType": "unlimited"}, {"accountManager": "Sanne"}],
    },
    {
        "customer_id": "2024000000000500",
        "first_name": "Lars",
        "last_name": "Nilsson",
        "addresses": [
            {"type": "email", "address": "lars.nilsson@example.se"},
            {"type": "telephone", "address": "+46 8 123 456 78", "comment": "Home"},
        ],
        "custom_fields": [],
    },
]


def timeline(now):
    """One entry of every activity type, as the contracts describe them."""
    return [
        {
            "kind": "NOTE",
            "occurred_at": now - timedelta(days=1),
            "header": "Previous contact",
            "body": "Asked about the **unlimited** plan; send the price list.",
            "markdown": True,
            "associated_user": "sanne@demo.example",
            "source": "hookhub",
            "external_id": "demo-note-1",
        },
        {
            "kind": "TASK",
            "occurred_at": now - timedelta(days=2),
            "header": "Call back",
            "body": "Confirm the new address.",
            "due_date": now + timedelta(days=1),
            "status": "Pending",
            "assigned_user": "sanne@demo.example",
            "source": "hookhub",
            "external_id": "demo-task-1",
        },
        {
            "kind": "CALL",
            "occurred_at": now - timedelta(days=3),
            "body": "Call type: Inbound",
            "from_number": "+31612312312",
            "to_number": "+31201234567",
            "duration_ms": 134000,
            "start_time": now - timedelta(days=3, minutes=3),
            "source": "m8com",
            "external_id": "demo-call-1",
        },
        {
            "kind": "TICKET",
            "occurred_at": now - timedelta(days=4),
            "header": "Invoice question",
            "body": "Customer asks why the March invoice is higher.",
            "created_date": now - timedelta(days=4),
            "priority": "MEDIUM",
            "pipeline": "Support",
            "pipeline_stage": "Waiting on customer",
            "link_url": "https://desk.example.com/tickets/1234",
            "source": "omnidesk",
            "external_id": "1234",
        },
        {
            "kind": "DEAL",
            "occurred_at": now - timedelta(days=5),
            "header": "Upgrade to unlimited",
            "body": "Interested in the yearly plan.",
            "close_date": now + timedelta(days=20),
            "currency": "EUR",
            "amount": "1200.00",
            "pipeline": "Sales",
            "pipeline_stage": "Proposal",
            "source": "hookhub",
            "external_id": "demo-deal-1",
        },
        {
            "kind": "APPOINTMENT",
            "occurred_at": now - timedelta(days=6),
            "header": "Onboarding session",
            "body": "Walk through the new dashboard.",
            "start_date": now + timedelta(days=3),
            "end_date": now + timedelta(days=3, hours=1),
            "all_day": False,
            "venue": "Video call",
            "status": "Confirmed",
            "source": "hookhub",
            "external_id": "demo-appointment-1",
        },
        {
            "kind": "EVENT",
            "occurred_at": now - timedelta(days=7),
            "header": "Marketing mail",
            "body": "Marketing mail regarding price reduction",
            "link_url": "https://hubspot.example.com/link234235",
            "source": "hubspot",
            "external_id": "2354rfwerf45",
        },
    ]


CRM_CREATE_BODY = """{
  "first_name": "{{ person.first_name }}",
  "last_name": "{{ person.last_name }}",
  "email": "{{ person.email }}",
  "phone": "{{ person.phone }}",
  "external_id": "{{ customer_id }}"
}"""
CRM_UPDATE_BODY = """{
  "first_name": "{{ person.first_name }}",
  "last_name": "{{ person.last_name }}",
  "email": "{{ person.email }}",
  "phone": "{{ person.phone }}"
}"""
RULE_BODY = """{
  "event": "{{ event.type }}",
  "customer": "{{ customer.name }}",
  "from": "{{ event.fromNumber }}",
  "duration_ms": "{{ event.duration }}"
}"""


def demo_integrations(brand: Brand, crm_base: str) -> None:
    """A CRM sync and a rule aimed at the demo CRM stand-in (scripts/demo_crm.py,
    started by `make run`), plus the two EddyDesk presets as disabled rules to
    start from. Made once: what an admin changed later is left alone. Skipped
    when the SSRF guard forbids loopback destinations (production settings)."""
    if not settings.HUB_ALLOW_PRIVATE_DESTINATIONS:
        return
    if not CrmSync.objects.filter(brand=brand).exists():
        sync = CrmSync.objects.create(brand=brand, name="Demo CRM (local stand-in)")
        crm_sync_set_signing_secret(sync=sync)
        actions = [
            ("create", "POST", f"{crm_base}/people", CRM_CREATE_BODY, "$.id"),
            ("update", "PUT", f"{crm_base}/people/{{{{ remote_id }}}}", CRM_UPDATE_BODY, ""),
            ("delete", "DELETE", f"{crm_base}/people/{{{{ remote_id }}}}", "", ""),
        ]
        for action, method, url, body, unique_id_path in actions:
            config = CrmSyncAction(
                sync=sync,
                action=action,
                enabled=True,
                method=method,
                url=url,
                headers="Content-Type: application/json",
                body=body,
                unique_id_path=unique_id_path,
                timeout_seconds=5,
            )
            config.full_clean()
            config.save()
    if not EventRule.objects.filter(brand=brand).exists():
        rule_create(
            brand=brand,
            name="Demo CRM: call logged",
            enabled=True,
            event_types=["call.logged"],
            conditions={"all": []},
            method="POST",
            url=f"{crm_base}/events",
            body_format="json",
            body=RULE_BODY,
            description="Sends every logged M8Com call to the demo CRM stand-in (scripts/demo_crm.py).",
        )
        for preset in ("telegram-abandoned-conversation", "crm-note-workitem-closed"):
            rule_create_from_preset(brand=brand, preset=preset)


class Command(BaseCommand):
    help = "Load the demo brand with customers, an admin login and inbound keys, and print how to call the hub."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", default="8000")
        parser.add_argument(
            "--crm-port",
            type=int,
            default=8001,
            help="Port of the demo CRM stand-in (scripts/demo_crm.py) the demo CRM sync and rule send to.",
        )

    def handle(self, *args, host, port, crm_port, **options):
        store_path = settings.LOCAL_DIR / "demo-credentials.json"
        settings.LOCAL_DIR.mkdir(exist_ok=True)
        store = json.loads(store_path.read_text()) if store_path.exists() else {}
        with transaction.atomic():
            brand = Brand.objects.filter(slug=DEMO_SLUG).first() or brand_create(
                slug=DEMO_SLUG, name="Demo Brand", default_region="NL", time_zone="Europe/Amsterdam"
            )
            if not brand.create_activity_urls:
                brand.create_activity_urls = [
                    {
                        "name": "New note",
                        "url": "https://crm.example.com/customers/{{ customer.customer_id }}/notes/new",
                    },
                    {
                        "name": "New ticket",
                        "url": "https://desk.example.com/tickets/new?customer={{ customer.customer_id }}",
                    },
                ]
                brand.more_info_url_template = "https://crm.example.com/customers/{{ customer.customer_id }}"
                brand_update(brand=brand)
            # Before the customers, so their creation reaches the demo CRM too.
            demo_integrations(brand, f"http://127.0.0.1:{crm_port}")
            now = timezone.now().replace(microsecond=0)
            for spec in CUSTOMERS:
                if Customer.objects.filter(brand=brand, customer_id=spec["customer_id"]).exists():
                    continue
                customer = customer_create(brand=brand, **spec)
                for entry in timeline(now):
                    activity_record(customer=customer, **entry)
            user_model = get_user_model()
            admin_user = user_model.objects.filter(username="admin").first()
            if admin_user is None or "admin_password" not in store:
                store["admin_password"] = secrets.token_urlsafe(12)
                admin_user = admin_user or user_model(username="admin", email="admin@demo.example")
                admin_user.is_staff = admin_user.is_superuser = True
                admin_user.set_password(store["admin_password"])
                admin_user.save()
            Membership.objects.get_or_create(user=admin_user, brand=brand, defaults={"role": Role.ADMIN})
            keys = store.setdefault("keys", {})
            for integration in ("omnidesk", "m8com", "servicehooks"):
                known = keys.get(integration)
                if known and Credential.objects.active().filter(prefix=known[:10], brand=brand).exists():
                    continue
                _, keys[integration] = credential_issue(brand=brand, integration=integration, name="demo")
        store["crm_base"] = f"http://127.0.0.1:{crm_port}"
        store_path.write_text(json.dumps(store, indent=2))
        store_path.chmod(0o600)
        self._print(host, port, store)

    def _print(self, host, port, store):
        base = f"http://{host}:{port}"
        keys = store["keys"]
        lines = [
            "",
            "Hookhub is ready.",
            f"  Admin:     {base}/admin/   login: admin   password: {store['admin_password']}",
            f"  API docs:  {base}/api/docs/",
            f"  Dashboard: {base}/admin/dashboard/demo/",
            f"  Demo CRM:  the CRM sync 'Demo CRM (local stand-in)' sends to {store.get('crm_base', '')} "
            "(scripts/demo_crm.py); change a demo customer in the admin and watch the sync's Logs tab.",
            f"  Demo brand 'demo' keys (kept in {settings.LOCAL_DIR / 'demo-credentials.json'}):",
            f"    omnidesk:     {keys['omnidesk']}",
            f"    m8com:        {keys['m8com']}",
            f"    servicehooks: {keys['servicehooks']}",
            "",
            "Try it:",
            f"  curl '{base}/hooks/omnidesk/demo/customerlookup?key={quote(keys['omnidesk'])}"
            "&channelAddressType=phoneNumber&address=%2B31612312312&ticketID=1234'",
            f"  curl '{base}/hooks/omnidesk/demo/customerlookup?key={quote(keys['omnidesk'])}&primaryID=2019000000000124'",
            f"  curl -H 'Authorization: Bearer {keys['m8com']}' '{base}/hooks/m8com/demo/lookup?fromNumber=%2B46701234567'",
            f"  curl -X POST -H 'Authorization: Bearer {keys['m8com']}' -H 'Content-Type: application/json' "
            f'\'{base}/hooks/m8com/demo/calllog\' -d \'{{"fromNumber":"+31612312312","toNumber":"+31201234567",'
            '"duration":65000,"startTime":1764000000000,"callType":"Inbound","body":"Call type: Inbound",'
            '"userId":"u-1"}\'',
            f"  curl -X POST -H 'x-api-key: {keys['servicehooks']}' -H 'Content-Type: application/json' "
            f'\'{base}/hooks/servicehooks/demo/abandoned-conversation\' -d \'{{"customerPhoneNumber":"+31612312312",'
            '"timeInQueue":134,"timestamp":"2026-11-22T10:00:00Z","queue":"Sales"}\'',
            "",
        ]
        self.stdout.write("\n".join(lines))
