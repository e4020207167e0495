"""Contribution points of the admin: a read-only panel one app adds to another
app's page without importing it (ARCHITECTURE: dependencies point one way, so
customers never imports synclog, and synclog never imports hooks). synclog adds
the customer's Logs panel in its AppConfig.ready(); hooks.outbound adds the
dashboard's Destination health section from its admin module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Each takes the customer and returns safe HTML (format_html).
customer_panels: list[Callable[[Any], str]] = []


def customer_panel_add(panel: Callable[[Any], str]) -> None:
    if panel not in customer_panels:
        customer_panels.append(panel)


# Each takes the brand and returns template context for the dashboard (merged in).
dashboard_sections: list[Callable[[Any], dict[str, Any]]] = []


def dashboard_section_add(section: Callable[[Any], dict[str, Any]]) -> None:
    if section not in dashboard_sections:
        dashboard_sections.append(section)
