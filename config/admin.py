"""The admin site: Django's, with Hookhub's names and the log pages that are
views rather than models (the unified log list, the dashboard) listed in the
sidebar and on the index under *Logs*, where auditors look for them."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.urls import reverse


class HookhubAdminSite(admin.AdminSite):
    site_header = "Hookhub"
    site_title = "Hookhub admin"
    index_title = "Integration hub"

    def get_app_list(self, request, app_label=None):
        app_list = super().get_app_list(request, app_label)
        for app in app_list:
            if app["app_label"] == "synclog":
                app["models"][:0] = [
                    _page("All logs (inbound and outbound)", "AllLogs", reverse("synclog-logs")),
                    _page("Dashboard", "Dashboard", reverse("hub-dashboard-home")),
                ]
        return app_list


def _page(name: str, object_name: str, url: str) -> dict:
    return {
        "name": name,
        "object_name": object_name,
        "admin_url": url,
        "add_url": None,
        "view_only": True,
        "perms": {"add": False, "change": False, "delete": False, "view": True},
    }


class HookhubAdminConfig(AdminConfig):
    default_site = "config.admin.HookhubAdminSite"
