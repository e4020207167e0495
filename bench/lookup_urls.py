"""The hub's URLs plus the benchmark's references (bench-only, never deployed)."""

from django.urls import path
from lookup_peer import OmnideskPeerLookupApi, ceiling

from config.urls import urlpatterns as hub_urlpatterns

urlpatterns = [
    path("bench/ceiling", ceiling),
    path("bench/peer/omnidesk/<str:brand_slug>/customerlookup", OmnideskPeerLookupApi.as_view()),
    *hub_urlpatterns,
]
