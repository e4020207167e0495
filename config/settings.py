"""Hookhub settings, read from the environment with django-environ.

Every setting is documented in README.md ("Configuration"). The defaults are the
embedded mode: SQLite in the project folder and django-q2's ORM broker. Secrets
the embedded mode needs (SECRET_KEY, HUB_ENCRYPTION_KEYS) are generated once into
``.hookhub/local.env`` (git-ignored), only when the environment does not provide
them. config.settings_production requires both from the environment before it
imports this module, so production never generates or writes a secret.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from cryptography.fernet import Fernet

from .environment import BASE_DIR, env

LOCAL_DIR = BASE_DIR / ".hookhub"


def _local_secret(name: str, make: Callable[[], str]) -> str:
    """The embedded mode's secret: the one generated earlier into .hookhub/local.env, or a new one kept there."""
    path = LOCAL_DIR / "local.env"
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, stored = line.partition("=")
            if key == name and stored:
                return stored
    LOCAL_DIR.mkdir(exist_ok=True)
    value = make()
    with path.open("a") as handle:
        handle.write(f"{name}={value}\n")
    path.chmod(0o600)
    return value


DEBUG = env.bool("DEBUG", default=False)
# Generated only when missing (``or``: never an eagerly evaluated default).
SECRET_KEY = env.str("SECRET_KEY", default="") or _local_secret("SECRET_KEY", lambda: secrets.token_urlsafe(50))
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Fernet keys for secrets at rest (outbound passwords, tokens, signing secrets).
# Comma-separated; the first encrypts, all decrypt (MultiFernet rotation).
HUB_ENCRYPTION_KEYS = env.list("HUB_ENCRYPTION_KEYS", default=[]) or [
    _local_secret("HUB_ENCRYPTION_KEY", lambda: Fernet.generate_key().decode())
]

INSTALLED_APPS = [
    "config.admin.HookhubAdminConfig",  # django.contrib.admin with Hookhub's site (config/admin.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    # Before django_q: its qcluster command (graceful stop, sweeper) replaces django-q2's.
    "hooks.outbound",
    "django_q",
    "simple_history",
    "hub",
    "customers",
    "synclog",
    "hooks.inbound",
    "hooks.rules",
    "hooks.sources",
    "demo",  # `manage.py demo`: above every app, imported by none
    "django_prometheus",  # request, database and cache families for /metrics (hub.metrics)
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",  # first and last: times the whole stack
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files from the app itself (gunicorn, no runserver)
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'hookhub.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and not env.bool(
    "HUB_DB_PREPARED_STATEMENTS", default=True
):
    # Behind a pooler in transaction mode (PgBouncer before 1.21) prepared
    # statements break; the lookups' hot cursor honours this (customers.selectors).
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while the worker writes; a busy timeout
    # instead of "database is locked" under the embedded web + worker pair.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    DATABASES["default"]["CONN_MAX_AGE"] = 0
# django-prometheus's wrappers of the same backends: the django_db_* families.
DATABASES["default"]["ENGINE"] = {
    "django.db.backends.postgresql": "django_prometheus.db.backends.postgresql",
    "django.db.backends.sqlite3": "django_prometheus.db.backends.sqlite3",
}.get(DATABASES["default"]["ENGINE"], DATABASES["default"]["ENGINE"])
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
FORMS_URLFIELD_ASSUME_HTTPS = True  # Django 6 default, opted into now

STATIC_URL = "static/"
STATIC_ROOT = env.str("STATIC_ROOT", default="") or BASE_DIR / "staticfiles"
# WhiteNoise serves STATIC_ROOT (filled by collectstatic) from the WSGI app, so gunicorn alone
# serves the admin in the embedded mode and in production; collectstatic adds gzip copies.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

REDIS_URL = env.str("REDIS_URL", default="")

CACHES = {
    "default": (
        # django-prometheus's subclass of Django's RedisCache: the django_cache_* families.
        {"BACKEND": "django_prometheus.cache.backends.redis.NativeRedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        # Per process; large enough for the lookup sources' answers (Django's default keeps 300).
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "OPTIONS": {"MAX_ENTRIES": 100_000}}
    )
}

# django-q2: the ORM broker by default, Redis when REDIS_URL is set.
# ORM broker redelivers an unacknowledged task after `retry` seconds, so
# retry > timeout > the largest outbound HTTP timeout (30 s).
Q_CLUSTER = {
    "name": "hookhub",
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": 90,
    "retry": 120,
    "max_attempts": 1,
    "queue_limit": 50,
    "bulk": 10,
    "catch_up": False,
    "save_limit": 1000,
    "ack_failures": True,
    "poll": env.float("Q_POLL", default=0.2),
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "hub.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Hookhub platform API",
    "DESCRIPTION": "Endpoints that support platforms and phone systems call: "
    "Omnidesk customer lookup, M8Com number lookup and call logging, "
    "contact-center service hooks.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

# Largest inbound request body the platform endpoints accept (bytes); larger gets 413.
HUB_MAX_BODY_BYTES = env.int("HUB_MAX_BODY_BYTES", default=256 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(HUB_MAX_BODY_BYTES, 2_621_440)

# Inbound request log: buffered and written in bulk by a background thread so
# that logging never slows a lookup. 0 writes each row straight away (tests).
SYNCLOG_FLUSH_INTERVAL = env.float("SYNCLOG_FLUSH_INTERVAL", default=0.5)
SYNCLOG_RETENTION_DAYS = env.int("SYNCLOG_RETENTION_DAYS", default=90)

# Outbound delivery (EddyDesk contract: every 30 minutes for 24 hours).
HUB_RETRY_INTERVAL_SECONDS = env.int("HUB_RETRY_INTERVAL_SECONDS", default=30 * 60)
HUB_RETRY_WINDOW_SECONDS = env.int("HUB_RETRY_WINDOW_SECONDS", default=24 * 60 * 60)
# A receiver's Retry-After (429 / 503) is honoured up to this many seconds.
HUB_RETRY_AFTER_MAX_SECONDS = env.int("HUB_RETRY_AFTER_MAX_SECONDS", default=6 * 60 * 60)
# A worker holds a claimed delivery this long; after that the sweep hands it to another.
# Must be above the longest webhook timeout (30 s) plus 5 s: `manage.py check` refuses less.
HUB_DELIVERY_LEASE_SECONDS = env.int("HUB_DELIVERY_LEASE_SECONDS", default=60)
# Each qcluster process checks this often for due deliveries (retries, expired leases,
# tasks a broker lost) and asks for a task; 0 leaves it to the minute schedule.
HUB_SWEEP_INTERVAL_SECONDS = env.float("HUB_SWEEP_INTERVAL_SECONDS", default=1.0)
# The engine's clock is the database's (hooks/outbound/engine/clock.py), read again this often.
HUB_CLOCK_RESYNC_SECONDS = env.float("HUB_CLOCK_RESYNC_SECONDS", default=60.0)
# After SIGTERM a worker finishes its current request; one still busy after this exits anyway.
HUB_WORKER_STOP_GRACE_SECONDS = env.float("HUB_WORKER_STOP_GRACE_SECONDS", default=7.0)
# Largest output an admin-authored template (URL, headers, body) may render to.
HUB_TEMPLATE_MAX_OUTPUT_BYTES = env.int("HUB_TEMPLATE_MAX_OUTPUT_BYTES", default=256 * 1024)
# CPU time one render of an outbound template may use (hub.templating); the
# M8Com link templates of one lookup answer share their own, smaller budget.
HUB_TEMPLATE_TIME_BUDGET_MS = env.int("HUB_TEMPLATE_TIME_BUDGET_MS", default=20)
HUB_LINK_TEMPLATE_TIME_BUDGET_MS = env.int("HUB_LINK_TEMPLATE_TIME_BUDGET_MS", default=5)
# Let outbound webhooks reach private / loopback addresses. Off in production;
# tests and the demo turn it on to talk to receivers on 127.0.0.1.
HUB_ALLOW_PRIVATE_DESTINATIONS = env.bool("HUB_ALLOW_PRIVATE_DESTINATIONS", default=False)

# Destination health (hooks.outbound.engine.health): alert the brand's admins at 50/70/90/100 % of this
# many consecutive failures, and once when failing for HUB_HEALTH_ALERT_AFTER_SECONDS (0: never);
# disable a destination (its deliveries paused) after failing for HUB_HEALTH_DISABLE_AFTER_SECONDS (0: never).
HUB_HEALTH_ALERT_THRESHOLD = env.int("HUB_HEALTH_ALERT_THRESHOLD", default=100)
HUB_HEALTH_ALERT_AFTER_SECONDS = env.int("HUB_HEALTH_ALERT_AFTER_SECONDS", default=24 * 60 * 60)
HUB_HEALTH_DISABLE_AFTER_SECONDS = env.int("HUB_HEALTH_DISABLE_AFTER_SECONDS", default=5 * 24 * 60 * 60)
# The circuit breaker: while a destination is failing, one probe at a time. Off: every due delivery is tried.
HUB_CIRCUIT_BREAKER = env.bool("HUB_CIRCUIT_BREAKER", default=True)
# Health alerts go out by e-mail: the console (stdout) in the embedded mode unless EMAIL_URL is set.
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="hookhub@localhost")

# Trust X-Forwarded-For from this many proxies when taking the client address
# (credential network allowlists, logs). 0: use REMOTE_ADDR.
HUB_TRUSTED_PROXY_COUNT = env.int("HUB_TRUSTED_PROXY_COUNT", default=0)

# Lookup answers cached in each process (entries; 0 turns the cache off), and in
# Django's shared cache too when HUB_LOOKUP_CACHE_SHARED (default: when REDIS_URL is set).
HUB_LOOKUP_CACHE_SIZE = env.int("HUB_LOOKUP_CACHE_SIZE", default=10_000)
HUB_LOOKUP_CACHE_SHARED = env.bool("HUB_LOOKUP_CACHE_SHARED", default=bool(env.str("REDIS_URL", default="")))
# The lookup endpoints answered before the middleware stack (hooks.inbound.fastpath; config/wsgi.py).
HUB_LOOKUP_FAST_PATH = env.bool("HUB_LOOKUP_FAST_PATH", default=True)
# Lookup sources (hooks.sources): worker threads per process for upstream calls.
HUB_LOOKUP_SOURCE_THREADS = env.int("HUB_LOOKUP_SOURCE_THREADS", default=32)

# /metrics (hub.metrics, docs/metrics.md): open to loopback; elsewhere only to these
# addresses/networks (comma-separated CIDRs) or with "Authorization: Bearer HUB_METRICS_TOKEN".
HUB_METRICS_ALLOWED_CIDRS = env.list("HUB_METRICS_ALLOWED_CIDRS", default=[])
HUB_METRICS_TOKEN = env.str("HUB_METRICS_TOKEN", default="")

# The credential cache's generation board (hub.generations): "redis" (default when
# REDIS_URL is set), "file" (default otherwise: processes of one host share
# HUB_GENERATION_FILE) or "off" (the key check reads the database on every call).
HUB_CREDENTIAL_CACHE = env.str("HUB_CREDENTIAL_CACHE", default="")
HUB_GENERATION_FILE = env.str("HUB_GENERATION_FILE", default="")

# The admin's public base URL, used in links the hub sends out (rule presets).
HUB_ADMIN_BASE_URL = env.str("HUB_ADMIN_BASE_URL", default="http://127.0.0.1:8000")

# Django's error page (DEBUG) and error e-mails mask secrets too (hub.redaction).
DEFAULT_EXCEPTION_REPORTER = "hub.redaction.RedactingExceptionReporter"
DEFAULT_EXCEPTION_REPORTER_FILTER = "hub.redaction.RedactingExceptionReporterFilter"
# dictConfig, then the redacting filter on the loggers of servers that keep
# their own handlers (gunicorn's access and error logs): no key reaches any log.
LOGGING_CONFIG = "hub.redaction.configure_logging"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "hub.redaction.RedactingFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.request": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}
