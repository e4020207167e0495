"""Settings for bench/lookup.py's gunicorn: the hub's own settings, plus the
two reference views (bench/lookup_urls.py). Nothing else differs, so the hub's
endpoints and the references run under the same middleware, database and
server settings."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "lookup_urls"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
