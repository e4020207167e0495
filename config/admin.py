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
            if app["app_label"] == "sources":
                app["models"].append(_page("Test a lookup", "TestLookup", reverse("admin:sources_lookupsource_test")))
        if app_label is None:
            _move_to_logs(app_list, "sources", "SourceCall")
        return app_list


def _move_to_logs(app_list: list, app_label: str, object_name: str) -> None:
    """A log model of another app (lookup source calls) is listed under Logs too."""
    apps = {app["app_label"]: app for app in app_list}
    if "synclog" not in apps or app_label not in apps:
        return
    entries = [m for m in apps[app_label]["models"] if m["object_name"] == object_name]
    apps["synclog"]["models"].extend(entries)
    apps[app_label]["models"] = [m for m in apps[app_label]["models"] if m["object_name"] != object_name]


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
