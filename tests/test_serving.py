"""`make run` serves the hub the way production does: the Procfile's web command
(gunicorn, no development server) with static files from the WSGI app itself
(WhiteNoise), on a throw-away SQLite database and static folder."""

from __future__ import annotations

import gzip
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch(url: str, **headers: str) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_procfile_web_process_serves_the_admin_and_its_css_without_runserver(tmp_path):
    web = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    command = web.removeprefix("web:").strip()
    assert "runserver" not in command and "gunicorn" in command

    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "REDIS_"))},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.sqlite3'}",
        "STATIC_ROOT": str(tmp_path / "static"),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
    }
    manage = [sys.executable, "manage.py"]
    for step in (["migrate", "--noinput", "-v", "0"], ["collectstatic", "--noinput", "-v", "0"]):
        subprocess.run([*manage, *step], cwd=ROOT, env=env, check=True, timeout=120)

    log = tmp_path / "web.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _, body = fetch(f"{base}/healthz")
                break
            except OSError:
                assert server.poll() is None, log.read_text()[-2000:]
                assert time.monotonic() < deadline, "gunicorn did not answer within 60 s"
                time.sleep(0.2)
        assert (status, body) == (200, b'{"status": "ok"}')

        status, _, page = fetch(f"{base}/admin/login/")
        assert status == 200
        css_path = re.search(rb'href="(/static/admin/css/[^"]+\.css)"', page)
        assert css_path, "the login page links no admin stylesheet"

        status, headers, css = fetch(base + css_path.group(1).decode())
        assert status == 200
        assert headers["Content-Type"].startswith("text/css")
        assert css == (tmp_path / "static" / css_path.group(1).decode().removeprefix("/static/")).read_bytes()

        status, headers, packed = fetch(base + css_path.group(1).decode(), **{"Accept-Encoding": "gzip"})
        assert (status, headers.get("Content-Encoding")) == (200, "gzip")
        assert gzip.decompress(packed) == css
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    output = log.read_text()
    assert "development server" not in output.lower()
    assert "gunicorn" in output.lower()  # its startup lines: the real server answered
