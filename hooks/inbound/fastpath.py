"""The lookup fast path: the two lookup endpoints served before Django's
middleware stack and URL resolver (issue 12, "Speed").

A cached lookup's own work is ~40 us; the rest of a request's CPU was Django's
machinery around it: ten middlewares (two of them django-prometheus's timers),
the URL resolver walking the root and ``hooks/`` patterns, the view's class
wrapper. :class:`LookupWSGIHandler` (config/wsgi.py) is Django's WSGIHandler
with one change, in ``get_response``: a request for
``/hooks/omnidesk/<brand>/customerlookup`` or ``/hooks/m8com/<brand>/lookup``
is answered by :class:`LookupFastPath` instead of the middleware chain;
everything else, and everything around it, is Django's own code:

- ``WSGIHandler.__call__`` unchanged: script prefix (SCRIPT_NAME,
  FORCE_SCRIPT_NAME), ``request_started`` / ``request_finished`` (so database
  connections are handled as for every request: ``close_old_connections``),
  the ``WSGIRequest``, status line, headers, closing;
- the route is matched by the URL patterns' own objects (the adapters'
  ``urlpatterns`` as included by the root URL conf), after checking that no
  pattern before them matches (then Django resolves): the same kwargs as the
  resolver gives, the same view callable (the ``as_view()`` function), wrapped
  by ``make_view_atomic`` as Django does;
- the middlewares that change these answers run for real, in settings order
  (SecurityMiddleware, CommonMiddleware, XFrameOptionsMiddleware, simple
  history's request context), each wrapped in ``convert_exception_to_response``
  as Django loads them, so headers, redirects (SECURE_SSL_REDIRECT), 400 for a
  disallowed Host and the 500 of an escaped exception come from Django's code;
- 4xx/5xx answers are logged by ``log_response`` as Django does.

What is left out, and why that is invisible to a client (checked when the fast
path is built; any middleware not in these tables turns it off with a warning):
django-prometheus's two middlewares (metrics only: the ``django_http_*``
request families no longer count lookups; the ``hookhub_inbound_*`` families
count every one), WhiteNoise (serves files only under the static prefix, which
falls through; a ``WHITENOISE_ROOT`` turns the fast path off), and sessions,
CSRF, authentication and messages, which do nothing for a request without
cookies to a ``csrf_exempt`` view that reads none of them: a request carrying a
``Cookie`` header goes through Django. ``request.resolver_match`` stays None
(the views do not read it).

``HUB_LOOKUP_FAST_PATH = False`` turns it off (every request through Django).
docs/architecture-notes.md, "The lookup fast path".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, HttpResponseBase
from django.urls import URLPattern, URLResolver, get_resolver, set_urlconf
from django.utils.log import log_response
from django.utils.module_loading import import_string

from . import m8com, omnidesk

logger = logging.getLogger(__name__)

# The middlewares run on the fast path: the ones that change these answers
# (headers, redirects, Host check) or their context (simple history).
RUN = frozenset(
    {
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
        "simple_history.middleware.HistoryRequestMiddleware",
    }
)
# Left out, with why a client cannot tell.
SKIP = {
    "django_prometheus.middleware.PrometheusBeforeMiddleware": "metrics only (django_http_* families)",
    "django_prometheus.middleware.PrometheusAfterMiddleware": "metrics only (django_http_* families)",
    "whitenoise.middleware.WhiteNoiseMiddleware": "static files only: the static prefix falls through",
    "django.contrib.sessions.middleware.SessionMiddleware": "no cookie (a request with one falls through)",
    "django.middleware.csrf.CsrfViewMiddleware": "csrf_exempt views, no cookie (a request with one falls through)",
    "django.contrib.auth.middleware.AuthenticationMiddleware": "request.user is not read by the lookups",
    "django.contrib.messages.middleware.MessageMiddleware": "no cookie, no messages",
}
# The endpoints served: the adapters' own URL patterns.
ENDPOINTS: tuple[URLPattern, ...] = (*omnidesk.urlpatterns, *m8com.urlpatterns)

Route = tuple[Callable[..., Any], tuple, dict[str, Any], Callable[..., Any]]


class Unavailable(Exception):
    """The fast path cannot promise Django's answers under these settings: it stays off."""


class LookupFastPath:
    """The route check and the short middleware chain for the lookup endpoints."""

    def __init__(self, handler: WSGIHandler) -> None:
        self.handler = handler
        unknown = [path for path in settings.MIDDLEWARE if path not in RUN and path not in SKIP]
        if unknown:
            raise Unavailable(f"unknown middleware {', '.join(unknown)} (hooks.inbound.fastpath.RUN / SKIP)")
        if getattr(settings, "WHITENOISE_ROOT", None):
            raise Unavailable("WHITENOISE_ROOT serves files at any path")
        self.static_prefix = self._static_prefix()
        self._locate(get_resolver())
        self.chain = self._chain()

    @staticmethod
    def _static_prefix() -> str:
        """WhiteNoise's prefix, computed as WhiteNoiseMiddleware does: it serves nothing outside it."""
        if "whitenoise.middleware.WhiteNoiseMiddleware" not in settings.MIDDLEWARE:
            return ""
        from whitenoise.string_utils import ensure_leading_trailing_slash

        prefix = getattr(settings, "WHITENOISE_STATIC_PREFIX", None)
        if prefix is None:
            prefix = urlparse(settings.STATIC_URL or "").path
            script_name = (settings.FORCE_SCRIPT_NAME or "").rstrip("/")
            if script_name and prefix.startswith(script_name):
                prefix = prefix[len(script_name) :]
        prefix = ensure_leading_trailing_slash(prefix)
        if prefix == "/":
            raise Unavailable("WhiteNoise serves static files at the site's root")
        return prefix

    def _locate(self, resolver: URLResolver) -> None:
        """The include that holds the endpoints, the patterns Django tries before
        it (root level) and its own entries up to the last endpoint."""
        include_index = next(
            (
                index
                for index, entry in enumerate(resolver.url_patterns)
                if isinstance(entry, URLResolver) and all(p in entry.url_patterns for p in ENDPOINTS)
            ),
            None,
        )
        if include_index is None:
            raise Unavailable("the lookup endpoints are not included by the root URL conf")
        include = resolver.url_patterns[include_index]
        assert isinstance(include, URLResolver)
        self.include = include
        self.root_before = resolver.url_patterns[:include_index]
        last = max(self.include.url_patterns.index(p) for p in ENDPOINTS)
        self.entries = self.include.url_patterns[: last + 1]
        self.views: dict[int, Callable[..., Any]] = {}
        for pattern in ENDPOINTS:
            if not getattr(pattern.callback, "csrf_exempt", False):
                raise Unavailable(f"{pattern.name} is not csrf_exempt (CsrfViewMiddleware would act)")
            self.views[id(pattern)] = self.handler.make_view_atomic(pattern.callback)

    def _chain(self) -> Callable[[HttpRequest], Any]:
        """Django's load_middleware for the RUN middlewares only, around the view call."""
        chain = convert_exception_to_response(self._view)
        for path in reversed(settings.MIDDLEWARE):
            if path not in RUN:
                continue
            try:
                instance = import_string(path)(chain)
            except MiddlewareNotUsed:
                continue
            for hook in ("process_view", "process_exception", "process_template_response"):
                if hasattr(instance, hook):
                    raise Unavailable(f"{path} has {hook}, which the fast path does not call")
            chain = convert_exception_to_response(instance)
        return chain

    def route(self, request: HttpRequest) -> Route | None:
        """(view, args, kwargs, callback) when Django would resolve the request
        to a lookup endpoint and the fast path answers as Django would; else None."""
        path = request.path_info
        if not path.startswith("/") or "HTTP_COOKIE" in request.META:
            return None
        if self.static_prefix and path.startswith(self.static_prefix):
            return None
        rest = path[1:]  # the root resolver's ^/
        matched = self.include.pattern.match(rest)
        if matched is None:
            return None
        if any(entry.pattern.match(rest) for entry in self.root_before):
            return None  # an earlier root entry may take it: Django decides
        sub_path, include_args, include_kwargs = matched
        for entry in self.entries:
            found = entry.pattern.match(sub_path)
            if found is None:
                continue
            view = self.views.get(id(entry))
            if view is None or not isinstance(entry, URLPattern):
                return None
            # As URLResolver.resolve merges them.
            kwargs = {**include_kwargs, **self.include.default_kwargs, **found[2], **entry.default_args}
            args = found[1] if kwargs else (*include_args, *found[1])
            return view, args, kwargs, entry.callback
        return None

    def _view(self, request: HttpRequest) -> HttpResponseBase:
        view, args, kwargs, callback = request._hookhub_route  # type: ignore[attr-defined]
        response = view(request, *args, **kwargs)
        self.handler.check_response(response, callback)
        return response


class LookupWSGIHandler(WSGIHandler):
    """Django's WSGIHandler; the lookup endpoints answered by :class:`LookupFastPath`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._fast_path: LookupFastPath | None = None
        self._fast_path_built = False

    @property
    def fast_path(self) -> LookupFastPath | None:
        """Built at the first request (the URL conf is imported then, as Django does)."""
        if not self._fast_path_built:
            self._fast_path_built = True
            if getattr(settings, "HUB_LOOKUP_FAST_PATH", True):
                try:
                    self._fast_path = LookupFastPath(self)
                except Unavailable as exc:
                    logger.warning("Lookup fast path off: %s", exc)
        return self._fast_path

    def get_response(self, request):
        fast = self.fast_path
        route = fast.route(request) if fast is not None else None
        if route is None:
            return super().get_response(request)
        # BaseHandler.get_response, with the short chain.
        set_urlconf(settings.ROOT_URLCONF)
        request._hookhub_route = route  # type: ignore[attr-defined]
        response = fast.chain(request)  # type: ignore[union-attr]
        response._resource_closers.append(request.close)
        if response.status_code >= 400:
            log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)
        return response
