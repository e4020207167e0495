"""Settings read from the environment (README's table), checked in a fresh interpreter."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from django.conf import settings


def clean_environ(**environ) -> dict:
    """This process's environment without what tests set in it (the browser tests set
    DJANGO_ALLOW_ASYNC_UNSAFE, which the deploy check rightly refuses)."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DJANGO_ALLOW_ASYNC_UNSAFE", "SECRET_KEY"} and not k.startswith("HUB_")
    }
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


# What a deployment holds besides the code: left out of the clean copy the production checks run in.
NOT_DEPLOYED = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".hookhub",
    ".env",
    "*.sqlite3*",
    "__pycache__",
    ".*_cache",
    "tests",
    "docs",
    "bench",
    "screenshots",
    "staticfiles",
)


@pytest.fixture
def clean_copy(tmp_path):
    """The project copied into a fresh directory: no .hookhub/, no .env."""
    root = tmp_path / "hookhub"
    shutil.copytree(settings.BASE_DIR, root, ignore=NOT_DEPLOYED, symlinks=True)
    assert not (root / ".hookhub").exists()
    return root


def check_deploy(root, **environ):
    env = clean_environ(ALLOWED_HOSTS="hub.example.com", DATABASE_URL=f"sqlite:///{root / 'deploy.sqlite3'}", **environ)
    return subprocess.run(
        [
            sys.executable,
            "manage.py",
            "check",
            "--deploy",
            "--fail-level",
            "WARNING",
            "--settings=config.settings_production",
        ],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
    )


PRODUCTION_SECRET_KEY = "x" * 20 + "-production-secret-key-for-the-deploy-check-0123456789"


def test_production_settings_pass_check_deploy_and_write_no_file(clean_copy):
    from cryptography.fernet import Fernet

    keys = f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}"
    result = check_deploy(clean_copy, SECRET_KEY=PRODUCTION_SECRET_KEY, HUB_ENCRYPTION_KEYS=keys)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
    assert not (clean_copy / ".hookhub").exists()


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        ({}, "SECRET_KEY and HUB_ENCRYPTION_KEYS"),
        ({"SECRET_KEY": PRODUCTION_SECRET_KEY}, "HUB_ENCRYPTION_KEYS"),
        ({"SECRET_KEY": PRODUCTION_SECRET_KEY, "HUB_ENCRYPTION_KEYS": " , "}, "HUB_ENCRYPTION_KEYS"),
        ({"HUB_ENCRYPTION_KEYS": "unused"}, "SECRET_KEY"),
    ],
)
def test_production_settings_without_the_secrets_fail_clearly_and_write_no_file(clean_copy, environ, missing):
    result = check_deploy(clean_copy, **environ)
    assert result.returncode != 0
    assert (
        f"django.core.exceptions.ImproperlyConfigured: config.settings_production needs {missing} from the "
        "environment. Production never generates or stores secrets"
    ) in result.stderr
    assert not (clean_copy / ".hookhub").exists()


def test_production_settings_refuse_a_key_that_is_not_a_fernet_key(clean_copy):
    from cryptography.fernet import Fernet

    result = check_deploy(
        clean_copy, SECRET_KEY=PRODUCTION_SECRET_KEY, HUB_ENCRYPTION_KEYS=f"{Fernet.generate_key().decode()},hunter2"
    )
    assert result.returncode != 0
    assert "HUB_ENCRYPTION_KEYS: key 2 of 2 is not a Fernet key" in result.stderr
    assert "hunter2" not in result.stderr
    assert not (clean_copy / ".hookhub").exists()


def test_the_embedded_mode_generates_its_secrets_once_and_keeps_them(clean_copy):
    code = "import django; django.setup(); from django.conf import settings as s; print(s.SECRET_KEY, s.HUB_ENCRYPTION_KEYS)"
    env = clean_environ(DJANGO_SETTINGS_MODULE="config.settings", DATABASE_URL="sqlite:///:memory:")
    runs = [
        subprocess.run([sys.executable, "-c", code], env=env, cwd=clean_copy, capture_output=True, text=True)
        for _ in range(2)
    ]
    assert [run.returncode for run in runs] == [0, 0], runs[0].stderr[-2000:]
    assert runs[0].stdout == runs[1].stdout
    stored = (clean_copy / ".hookhub" / "local.env").read_text()
    secret_key, keys = runs[0].stdout.split(" ", 1)
    assert stored.splitlines()[0] == f"SECRET_KEY={secret_key}"
    assert (clean_copy / ".hookhub" / "local.env").stat().st_mode & 0o777 == 0o600
    # The environment's values win, and nothing more is generated for them.
    env.update(SECRET_KEY=PRODUCTION_SECRET_KEY, HUB_ENCRYPTION_KEYS="from-the-environment")
    run = subprocess.run([sys.executable, "-c", code], env=env, cwd=clean_copy, capture_output=True, text=True)
    assert run.stdout.strip() == f"{PRODUCTION_SECRET_KEY} ['from-the-environment']"
    assert (clean_copy / ".hookhub" / "local.env").read_text() == stored
