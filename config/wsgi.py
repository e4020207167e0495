"""The WSGI application (gunicorn ``config.wsgi:application``).

Django's own application (``get_wsgi_application``: django.setup() and a
WSGIHandler), with the lookup endpoints answered before the middleware stack and
URL resolver (hooks.inbound.fastpath; ``HUB_LOOKUP_FAST_PATH=false`` turns it off).
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)

from hooks.inbound.fastpath import LookupWSGIHandler  # noqa: E402 - needs the apps loaded

application = LookupWSGIHandler()
