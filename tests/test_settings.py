"""Settings read from the environment (README's table), checked in a fresh interpreter."""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings


def clean_environ(**environ) -> dict:
    """This process's environment without what tests set in it (the browser tests set
    DJANGO_ALLOW_ASYNC_UNSAFE, which the deploy check rightly refuses)."""
    inherited = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE" and not k.startswith("HUB_")}
    return {**inherited, **environ}


def settings_of(**environ) -> dict:
    code = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({'options': s.DATABASES['default'].get('OPTIONS', {}), "
        "'lease': s.HUB_DELIVERY_LEASE_SECONDS, 'cache': s.HUB_LOOKUP_CACHE_SIZE, "
        "'shared': s.HUB_LOOKUP_CACHE_SHARED}, default=str))"
    )
    env = clean_environ(DJANGO_SETTINGS_MODULE="config.settings", **environ)
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("flag", "expected"), [("false", {"prepare_threshold": None}), ("true", {})])
def test_prepared_statements_can_be_switched_off_for_a_pooler(flag, expected):
    found = settings_of(DATABASE_URL="postgres://hub@127.0.0.1:5432/hub", HUB_DB_PREPARED_STATEMENTS=flag)
    assert {k: v for k, v in found["options"].items() if k == "prepare_threshold"} == expected


def test_engine_settings_come_from_the_environment():
    found = settings_of(
        DATABASE_URL="sqlite:///:memory:",
        HUB_DELIVERY_LEASE_SECONDS="90",
        HUB_LOOKUP_CACHE_SIZE="0",
        REDIS_URL="redis://127.0.0.1:6379/0",
    )
    assert (found["lease"], found["cache"], found["shared"]) == (90, 0, True)


def test_production_settings_pass_check_deploy(tmp_path):
    from cryptography.fernet import Fernet

    env = clean_environ(
        DJANGO_SETTINGS_MODULE="config.settings_production",
        SECRET_KEY="x" * 20 + "-production-secret-key-for-the-deploy-check-0123456789",
        HUB_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="hub.example.com",
        DATABASE_URL=f"sqlite:///{tmp_path / 'deploy.sqlite3'}",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
