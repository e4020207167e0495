"""Production settings: the base settings with every `check --deploy` item on.

Use with DJANGO_SETTINGS_MODULE=config.settings_production. SECRET_KEY and
HUB_ENCRYPTION_KEYS must come from the environment here.
"""

from .settings import *  # noqa: F403
from .settings import env

DEBUG = False
SECRET_KEY = env.str("SECRET_KEY")
HUB_ENCRYPTION_KEYS = env.list("HUB_ENCRYPTION_KEYS")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
HUB_ALLOW_PRIVATE_DESTINATIONS = env.bool("HUB_ALLOW_PRIVATE_DESTINATIONS", default=False)
