"""Settings for the test suite: the base settings, deterministic and fast."""

import os
import tempfile

from .settings import *  # noqa: F403

# One generation board file per test session, shared with the processes it starts
# (exported), never with another session's database on this host.
HUB_GENERATION_FILE = os.environ.setdefault(
    "HUB_GENERATION_FILE", os.path.join(tempfile.gettempdir(), f"hookhub-test-generations-{os.getpid()}")
)

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SYNCLOG_FLUSH_INTERVAL = 0
HUB_ALLOW_PRIVATE_DESTINATIONS = True
if not REDIS_URL:  # noqa: F405 - the production shape (REDIS_URL) keeps Redis as the cache, as deployed
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
Q_CLUSTER = {**Q_CLUSTER, "poll": 0.05}  # noqa: F405
# Tests run without collectstatic: WhiteNoise looks files up per request instead of
# scanning a STATIC_ROOT that does not exist (tests/test_serving.py serves the real way).
WHITENOISE_AUTOREFRESH = True
