"""Management commands (issue 2): create_brand, issue_credential, import_customers, export_customers, demo (demo app)."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from customers.models import Customer
from hub.models import Brand, Credential
from hub.selectors import credential_authenticate
from hub.services import secret_hash

pytestmark = pytest.mark.django_db


def call(*args, **kwargs):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err, **kwargs)
    return out.getvalue(), err.getvalue()


def test_create_brand_and_its_errors():
    out, _ = call("create_brand", "acme", "--name", "Acme", "--region", "se", "--time-zone", "Europe/Stockholm")
    assert out.strip() == "Created brand acme (Acme)."
    brand = Brand.objects.get(slug="acme")
    assert (brand.name, brand.default_region, brand.time_zone, brand.is_active) == (
        "Acme",
        "SE",
        "Europe/Stockholm",
        True,
    )
    with pytest.raises(CommandError, match="slug: Brand with this Slug already exists"):
        call("create_brand", "acme", "--name", "Again")
    with pytest.raises(CommandError, match="default_region: 'XX' is not a phone region"):
        call("create_brand", "other", "--name", "Other", "--region", "XX")
    assert Brand.objects.count() == 1


def test_issue_credential_prints_the_secret_alone_on_the_last_line(brand):
    out, err = call("issue_credential", "acme", "omnidesk", "--name", "prod", "--allow", "203.0.113.0/24")
    secret = out.splitlines()[-1]
    assert out == secret + "\n"
    assert secret.startswith("hh_") and len(secret) >= 43
    credential = Credential.objects.get(brand=brand)
    assert (credential.integration, credential.name, credential.allowed_networks) == (
        "omnidesk",
        "prod",
        ["203.0.113.0/24"],
    )
    assert credential.secret_hash == secret_hash(secret) and secret not in credential.prefix
    assert f"{credential.prefix}…" in err
    ok = credential_authenticate(brand_slug="acme", integration="omnidesk", secret=secret, client_ip="203.0.113.9")
    assert ok.status == 0


def test_issue_credential_errors(brand):
    with pytest.raises(CommandError, match="No brand with slug 'nope'"):
        call("issue_credential", "nope", "omnidesk")
    with pytest.raises(CommandError, match="invalid choice"):
        call("issue_credential", "acme", "zendesk")
    with pytest.raises(CommandError, match="Not a network in CIDR notation: 10.0.0.0/99"):
        call("issue_credential", "acme", "m8com", "--allow", "10.0.0.0/99")
    assert Credential.objects.count() == 0


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content) if isinstance(content, str) else path.write_bytes(content)
    return str(path)


def test_import_json_reports_counts(brand, tmp_path):
    path = write(
        tmp_path,
        "customers.json",
        json.dumps(
            [
                {
                    "customerID": "1",
                    "customerFirstname": "Ann",
                    "addresses": [{"address": "+31612312312", "type": "telephone"}],
                },
                {"customerID": "2", "customerFirstname": "Bo"},
            ]
        ),
    )
    out, err = call("import_customers", "acme", path)
    assert out.startswith("acme: 2 rows: 2 created, 0 updated, 0 unchanged, 0 rejected.")
    assert err == ""
    assert "\r[" not in out  # no progress bar when stdout is not a terminal
    out, _ = call("import_customers", "acme", path)
    assert "0 created, 0 updated, 2 unchanged" in out
    assert Customer.objects.filter(brand=brand).count() == 2


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.json", None, "no such file"),
        ("broken.json", '[{"customerID": "1",', "not valid JSON"),
        ("object.json", '{"customerID": "1"}', "expected a JSON array of customers"),
        ("latin1.csv", "customer_id,first_name\n1,Zo\xeb\n".encode("latin-1"), "not UTF-8 text"),
        ("columns.csv", "customer_id,nickname\n1,x\n", "unknown column(s) 'nickname'"),
        ("empty.csv", "", "empty file"),
    ],
)
def test_import_unreadable_files_exit_non_zero_and_store_nothing(brand, tmp_path, name, content, message):
    path = str(tmp_path / name) if content is None else write(tmp_path, name, content)
    with pytest.raises(CommandError) as excinfo:
        call("import_customers", "acme", path)
    assert message in str(excinfo.value)
    assert "Nothing was imported." in str(excinfo.value)
    assert excinfo.value.returncode == 1
    assert Customer.objects.count() == 0


def test_import_invalid_rows_are_reported_on_stderr_with_exit_status_2(brand, tmp_path):
    path = write(
        tmp_path,
        "customers.json",
        json.dumps(
            [
                {"customerID": "1", "addresses": [{"address": "0612", "type": "telephone"}]},
                {"customerID": "2", "addresses": [{"address": "+31612312312", "type": "telephone"}]},
                {"customerID": "3", "addresses": [{"address": "x@", "type": "email"}]},
            ]
        ),
    )
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("import_customers", "acme", path, stdout=out, stderr=err)
    assert excinfo.value.returncode == 2
    assert "2 row(s) rejected; the other rows were imported." in str(excinfo.value)
    assert err.getvalue().splitlines() == [
        "Rejected index 0 (customerID 1): addresses[0].address: '0612' is not a valid phone number",
        "Rejected index 2 (customerID 3): addresses[0].address: 'x@' is not a valid e-mail address",
    ]
    assert "1 created" in out.getvalue() and "2 rejected" in out.getvalue()
    assert list(Customer.objects.values_list("customer_id", flat=True)) == ["2"]


def test_import_csv_file_reports_line_numbers(brand, tmp_path):
    path = write(tmp_path, "customers.csv", "customer_id,first_name,phone\n1,Ann,0612312312\n2,Bo,abc\n")
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_customers", "acme", path, stdout=out, stderr=err)
    assert err.getvalue().strip() == "Rejected line 3 (customerID 2): phone: 'abc' is not a phone number"
    assert Customer.objects.get().addresses.get().normalized == "+31612312312"


def test_import_unknown_brand(tmp_path):
    with pytest.raises(CommandError, match="No brand with slug 'nope'"):
        call("import_customers", "nope", write(tmp_path, "c.json", "[]"))


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_import_draws_a_progress_bar_on_a_terminal(brand, tmp_path):
    path = write(tmp_path, "c.json", json.dumps([{"customerID": str(i)} for i in range(5)]))
    out = FakeTerminal()
    call_command("import_customers", "acme", path, "--chunk-size", "2", stdout=out, stderr=io.StringIO())
    text = out.getvalue()
    assert "\r[############------------------] 2/5" in text
    assert "\r[##############################] 5/5" in text


def test_export_to_stdout_and_file_round_trips(brand, tmp_path):
    path = write(
        tmp_path,
        "in.json",
        json.dumps([{"customerID": "1", "customerFirstname": "Ann", "customFields": [{"tier": "gold"}]}]),
    )
    call("import_customers", "acme", path)
    out, err = call("export_customers", "acme")
    assert json.loads(out) == [
        {
            "addresses": [],
            "customerFirstname": "Ann",
            "customerID": "1",
            "customerLastname": "",
            "customFields": [{"tier": "gold"}],
            "timeline": [],
        }
    ]
    assert err.strip() == "Exported 1 customer(s) of acme."
    target = tmp_path / "out.json"
    call("export_customers", "acme", "--output", str(target))
    assert json.loads(target.read_text()) == json.loads(out)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left
    result, _ = call("import_customers", "acme", str(target))
    assert "1 unchanged" in result
    with pytest.raises(CommandError, match="no such directory"):
        call("export_customers", "acme", "--output", str(tmp_path / "missing" / "x.json"))


def test_demo_twice_does_not_duplicate_and_prints_working_keys(settings, tmp_path):
    from django.core.management import get_commands

    # The demo loader imports every app, so it lives in its own app above them (pyproject's import contracts).
    assert get_commands()["demo"] == "demo"
    settings.LOCAL_DIR = tmp_path
    first, _ = call("demo", "--port", "8123")
    customers = Customer.objects.count()
    credentials = Credential.objects.count()
    second, _ = call("demo", "--port", "8123")
    assert Customer.objects.count() == customers > 0
    assert Credential.objects.count() == credentials == 3
    assert first == second
    assert "http://127.0.0.1:8123/admin/" in first
    omnidesk_key = json.loads((tmp_path / "demo-credentials.json").read_text())["keys"]["omnidesk"]
    assert f"omnidesk:     {omnidesk_key}" in first
    assert (
        credential_authenticate(
            brand_slug="demo", integration="omnidesk", secret=omnidesk_key, client_ip="127.0.0.1"
        ).status
        == 0
    )
