"""Production settings: the base settings with every `check --deploy` item on.

Use with DJANGO_SETTINGS_MODULE=config.settings_production. SECRET_KEY and
HUB_ENCRYPTION_KEYS must come from the environment (or .env): they are checked
before the base settings are imported, so production never generates a secret
or writes one to the file system.
"""

from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from .environment import env

REQUIRED_FROM_ENVIRONMENT = ("SECRET_KEY", "HUB_ENCRYPTION_KEYS")


def _secrets_from_environment() -> tuple[str, list[str]]:
    missing = [name for name in REQUIRED_FROM_ENVIRONMENT if not env.str(name, default="").strip(" ,")]
    if missing:
        raise ImproperlyConfigured(
            f"config.settings_production needs {' and '.join(missing)} from the environment. Production never "
            "generates or stores secrets: set them from your secret store (README, 'Production'). "
            'A Fernet key: python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
        )
    keys = [key.strip() for key in env.list("HUB_ENCRYPTION_KEYS") if key.strip()]
    for position, key in enumerate(keys, 1):
        try:
            Fernet(key.encode())
        except ValueError:
            raise ImproperlyConfigured(
                f"HUB_ENCRYPTION_KEYS: key {position} of {len(keys)} is not a Fernet key "
                "(32 url-safe base64-encoded bytes)."
            ) from None
    return env.str("SECRET_KEY"), keys


# Before the base settings, which would generate what is missing (embedded mode).
_SECRET_KEY, _ENCRYPTION_KEYS = _secrets_from_environment()

from .settings import *  # noqa: E402, F403

DEBUG = False
SECRET_KEY = _SECRET_KEY
HUB_ENCRYPTION_KEYS = _ENCRYPTION_KEYS
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
