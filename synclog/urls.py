"""The unified Logs page, mounted at /admin/logs/ (config/urls.py), behind the admin login."""

from django.contrib import admin
from django.urls import path

from .views import logs_export_view, logs_view

urlpatterns = [
    path("", admin.site.admin_view(logs_view), name="synclog-logs"),
    path("export.csv", admin.site.admin_view(logs_export_view), name="synclog-logs-export"),
]
