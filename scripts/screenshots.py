"""Screenshots of the main admin pages: `make screenshots` (writes screenshots/*.png).

Starts the hub on a throw-away SQLite database on 127.0.0.1, loads the demo,
produces some traffic (lookups, a call log; the demo customers' creation
reaches the demo CRM stand-in through the demo CRM sync), logs in as the demo admin in Debian's headless Chromium and
saves a PNG of each page. Stops everything it started.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "screenshots"
CHROMIUM = os.environ.get("HUB_CHROMIUM", "/usr/bin/chromium")
PAGES = [
    ("01-index", "/admin/"),
    ("02-dashboard", "/admin/dashboard/demo/?range=24h"),
    ("03-customers", "/admin/customers/customer/"),
    ("04-customer", "{customer}"),
    ("05-credentials", "/admin/hub/credential/"),
    ("06-crm-syncs", "/admin/outbound/crmsync/"),
    ("07-crm-sync-tabs", "{crmsync}"),
    ("08-deliveries", "/admin/outbound/delivery/"),
    ("09-delivery-attempts", "/admin/synclog/deliveryattempt/"),
    ("10-inbound-requests", "/admin/synclog/inboundrequest/"),
    ("11-inbound-events", "/admin/inbound/inboundevent/"),
    ("12-rules", "/admin/rules/eventrule/"),
    ("13-logs", "/admin/logs/"),
    ("14-log-detail", "{attempt}"),
    ("15-configuration-changes", "/admin/hub/brand/changes/"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 - loopback only
            return
        except Exception:  # noqa: BLE001
            time.sleep(0.3)
    raise SystemExit(f"the hub did not answer at {url}")


def main() -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="hookhub-shots-"))
    port = free_port()
    crm_port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "HUB_ALLOW_PRIVATE_DESTINATIONS": "true",
        "SYNCLOG_FLUSH_INTERVAL": "0",
        "HUB_ADMIN_BASE_URL": f"http://127.0.0.1:{port}",
    }
    python = sys.executable
    manage = [python, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True)
    processes = [
        subprocess.Popen(
            [python, str(ROOT / "scripts" / "demo_crm.py"), "--port", str(crm_port)], stdout=subprocess.DEVNULL
        ),
    ]
    subprocess.run(
        [*manage, "demo", "--port", str(port), "--crm-port", str(crm_port)],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    store = json.loads((ROOT / ".hookhub" / "demo-credentials.json").read_text())
    processes += [
        subprocess.Popen([*manage, "runserver", "--insecure", "--noreload", f"127.0.0.1:{port}"], env=env),
        subprocess.Popen([*manage, "qcluster"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/healthz")
        traffic(base, store["keys"])
        shell = subprocess.run([*manage, "shell", "-c", SHELL_IDS], env=env, check=True, capture_output=True, text=True)
        ids = json.loads(shell.stdout.strip().splitlines()[-1])
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"],
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, base_url=base)
            page.goto("/admin/login/")
            page.fill("#id_username", "admin")
            page.fill("#id_password", store["admin_password"])
            page.click("input[type=submit]")
            for name, path in PAGES:
                path = path.format(**{k: v or "/admin/" for k, v in ids.items()}) if "{" in path else path
                response = page.goto(path)
                if response is None or response.status >= 400:
                    print(f"skipped {name}: {path} answered {response.status if response else 'nothing'}")
                    continue
                page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
                print(f"wrote screenshots/{name}.png  ({path})")
            browser.close()
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def traffic(base: str, keys: dict) -> None:
    """A few real platform calls so the logs and the dashboard have something to show."""
    calls = [
        (
            "GET",
            f"/hooks/omnidesk/demo/customerlookup?key={keys['omnidesk']}&channelAddressType=phoneNumber"
            "&address=%2B31612312312&ticketID=1234",
            {},
            None,
        ),
        (
            "GET",
            f"/hooks/omnidesk/demo/customerlookup?key={keys['omnidesk']}&channelAddressType=email"
            "&address=thomas%40example.org",
            {},
            None,
        ),
        ("GET", "/hooks/omnidesk/demo/customerlookup?key=wrong&primaryID=1", {}, None),
        (
            "GET",
            "/hooks/m8com/demo/lookup?fromNumber=%2B46701234567",
            {"Authorization": f"Bearer {keys['m8com']}"},
            None,
        ),
        (
            "GET",
            "/hooks/m8com/demo/lookup?fromNumber=%2B31699999999",
            {"Authorization": f"Bearer {keys['m8com']}"},
            None,
        ),
        (
            "POST",
            "/hooks/m8com/demo/calllog",
            {"Authorization": f"Bearer {keys['m8com']}"},
            {
                "fromNumber": "+31612312312",
                "toNumber": "+31201234567",
                "duration": 65000,
                "startTime": int(time.time() * 1000) - 70000,
                "callType": "Inbound",
                "body": "Call to user: sanne@demo.example (+31201234567)\nCall type: Inbound",
                "userId": "u-1",
            },
        ),
        (
            "POST",
            "/hooks/servicehooks/demo/abandoned-conversation",
            {"x-api-key": keys["servicehooks"]},
            {
                "customerPhoneNumber": "+31612312312",
                "timeInQueue": 134,
                "timestamp": "2026-11-22T10:00:00Z",
                "queue": "Sales",
            },
        ),
    ]
    for method, path, headers, body in calls:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            base + path, data=data, method=method, headers={**headers, "Content-Type": "application/json"}
        )
        try:
            urllib.request.urlopen(request, timeout=5)  # noqa: S310 - loopback only
        except Exception:  # noqa: BLE001 - 4xx answers are part of the show
            pass


SHELL_IDS = """
import json
from django.apps import apps
from customers.models import Customer
out = {"customer": "", "crmsync": "", "attempt": ""}
c = Customer.objects.filter(brand__slug="demo").order_by("pk").first()
if c: out["customer"] = f"/admin/customers/customer/{c.pk}/change/"
try:
    s = apps.get_model("outbound", "CrmSync").objects.order_by("pk").first()
    if s: out["crmsync"] = f"/admin/outbound/crmsync/{s.pk}/change/"
    a = apps.get_model("synclog", "DeliveryAttempt").objects.order_by("-pk").first()
    if a: out["attempt"] = f"/admin/synclog/deliveryattempt/{a.pk}/change/"
except LookupError:
    pass
print(json.dumps(out))
"""

if __name__ == "__main__":
    main()
