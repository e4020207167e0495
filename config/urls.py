from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from hub.metrics import metrics_view
from synclog.dashboard import dashboard_view


def healthz(request):
    return JsonResponse({"status": "ok"})


urlpatterns = [
    # First: the platform endpoints are the hot path (resolved on every lookup).
    path("hooks/", include("hooks.urls")),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="hub-dashboard-home"),
    path("admin/dashboard/<slug:slug>/", admin.site.admin_view(dashboard_view), name="hub-dashboard"),
    path("admin/logs/", include("synclog.urls")),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
]
