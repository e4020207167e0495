"""Revocation is immediate across processes, with and without Redis.

Two real hub processes (tests/hooks/lookup_process.py: the whole Django stack,
their own credential and answer caches) share the database and the generation
board: the file of HUB_GENERATION_FILE without Redis, Redis (database 8) with it.
Both serve a key from their caches (no database query); one revokes it; the
other refuses it on its very next call, with no wait in between. A customer
changed in one process shows in the other's next lookup.

On SQLite (whose test database lives in memory) the processes share a file copy
(tests/hooks/outbound/test_worker.SharedDatabase); on PostgreSQL the test database.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from hub import generations
from hub.services import credential_issue
from tests.factories import customer

from .outbound.test_worker import SharedDatabase

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(settings.BASE_DIR)
REDIS_URL = "redis://127.0.0.1:6379/8"
DEADLINE_SECONDS = 30
OMNIDESK = "/hooks/omnidesk/acme/customerlookup"
M8COM = "/hooks/m8com/acme/lookup"


class HubProcess:
    def __init__(self, env: dict[str, str], via: str = "client"):
        self.via = via
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.hooks.lookup_process"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        assert self.read() == {"ready": True}

    def read(self) -> dict:
        answer = self._read()
        if self.via == "wsgi" and "status" in answer:
            assert answer["fast"], "config.wsgi's lookup fast path is off in the hub process"
        return answer

    def _read(self) -> dict:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], DEADLINE_SECONDS)
        if not ready:
            raise AssertionError("the hub process did not answer in time")
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError("the hub process ended")
        return json.loads(line)

    def send(self, **command) -> dict:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self.read()

    def omnidesk(self, secret: str) -> dict:
        params = {"key": secret, "channelAddressType": "phoneNumber", "address": "+31612312312"}
        return self.send(op="get", path=OMNIDESK, params=params, via=self.via)

    def m8com(self, secret: str) -> dict:
        return self.send(
            op="get",
            path=M8COM,
            params={"fromNumber": "+31612312312"},
            headers={"Authorization": f"Bearer {secret}"},
            via=self.via,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


# client: Django's whole stack; wsgi: config.wsgi.application, the lookup fast path gunicorn serves.
@pytest.mark.parametrize("via", ["client", "wsgi"])
@pytest.mark.parametrize("shared", ["file", "redis"])
def test_a_key_revoked_in_one_process_is_refused_by_the_other_at_once(brand, tmp_path, shared, via):
    if shared == "redis":
        generations.RedisBoard(REDIS_URL).reset()
        board_env = {"REDIS_URL": REDIS_URL, "HUB_CREDENTIAL_CACHE": "redis"}
    else:
        board_env = {"REDIS_URL": "", "HUB_CREDENTIAL_CACHE": "file", "HUB_GENERATION_FILE": str(tmp_path / "board")}
    customer(
        brand,
        customer_id="C-1",
        first_name="Maria",
        last_name="Andersson",
        addresses=[{"type": "telephone", "address": "+31612312312"}],
    )
    omnidesk_key, omnidesk_secret = credential_issue(brand=brand, integration="omnidesk")
    _, m8com_secret = credential_issue(brand=brand, integration="m8com")
    database = SharedDatabase(tmp_path)
    database.push()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": database.url(),
        "LOG_LEVEL": "WARNING",
        **board_env,
    }
    serving = HubProcess(env, via)
    revoking = HubProcess(env, via)
    try:
        for process in (serving, revoking):
            assert process.omnidesk(omnidesk_secret)["status"] == 200
            cached = process.omnidesk(omnidesk_secret)
            assert (cached["status"], cached["queries"]) == (200, 0)
            assert process.m8com(m8com_secret)["status"] == 200
            cached = process.m8com(m8com_secret)
            assert (cached["status"], cached["queries"]) == (200, 0)

        assert revoking.send(op="revoke", prefix=omnidesk_key.prefix) == {"done": True}
        started = time.monotonic()
        refused = serving.omnidesk(omnidesk_secret)
        assert refused["status"] == 403, refused
        assert json.loads(refused["body"])["error"]["code"]
        assert time.monotonic() - started < DEADLINE_SECONDS
        assert revoking.omnidesk(omnidesk_secret)["status"] == 403
        # The brand's other key keeps working, from the cache again after one reload.
        assert serving.m8com(m8com_secret)["status"] == 200
        assert serving.m8com(m8com_secret)["queries"] == 0

        assert revoking.send(op="rename", customer_id="C-1", first_name="Marie") == {"done": True}
        renamed = serving.m8com(m8com_secret)
        assert renamed["status"] == 200
        assert json.loads(renamed["body"])["displayName"] == "Marie Andersson"
    finally:
        serving.stop()
        revoking.stop()
