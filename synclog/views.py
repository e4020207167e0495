"""The unified Logs page (/admin/logs/): inbound calls and outbound delivery
attempts of the user's brands in one list, newest first, with the filters of
synclog.filters, pagination and a streamed CSV of exactly the filtered rows."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import reverse

from hub import scoping

from . import exports, selectors
from .filters import DIRECTIONS, INTEGRATIONS, OUTCOMES, LogQuery, source_choices

PER_PAGE = 50
MAX_ROWS = 10_000  # deeper than this, narrow the filters (or download the CSV)


def _require_log_reader(request) -> None:
    if not scoping.has_brands(user=request.user, action=scoping.VIEW):
        raise PermissionDenied("You belong to no brand yet.")


def _page_number(request) -> int:
    value = request.GET.get("p", "1")
    return max(int(value), 1) if value.isdigit() else 1


def _with_current(choices: list[tuple[str, str]], current: str) -> list[tuple[str, str]]:
    """A value from a link (an endpoint such as m8com.lookup, one action of a sync) stays selected."""
    if current and current not in {value for value, _label in choices}:
        return [*choices, (current, current)]
    return choices


def logs_view(request):
    _require_log_reader(request)
    query = LogQuery(request.GET)
    filtered = selectors.logs_filtered(user=request.user, query=query)
    counts = selectors.log_count(filtered=filtered)
    total = sum(counts.values())
    pages = max((min(total, MAX_ROWS) + PER_PAGE - 1) // PER_PAGE, 1)
    page = min(_page_number(request), pages)
    rows = selectors.log_page(filtered=filtered, offset=(page - 1) * PER_PAGE, limit=PER_PAGE)
    active = query.active
    base = urlencode(active)

    def page_url(number: int) -> str:
        return "?" + urlencode({**active, "p": number})

    context = {
        **admin.site.each_context(request),
        "title": "Logs",
        "query": query.values,
        "rows": rows,
        "total": total,
        "counts": counts,
        "truncated": total > MAX_ROWS,
        "max_rows": MAX_ROWS,
        "page": page,
        "pages": pages,
        "previous_url": page_url(page - 1) if page > 1 else "",
        "next_url": page_url(page + 1) if page < pages else "",
        "brands": scoping.brands(user=request.user, action=scoping.VIEW),
        "directions": DIRECTIONS,
        "integrations": _with_current([(v, label) for v, label, _d in INTEGRATIONS], query["integration"]),
        "outcomes": OUTCOMES,
        "sources": _with_current(source_choices(request.user), query["source"]),
        "export_url": reverse("synclog-logs-export") + (f"?{base}" if base else ""),
        "filtered": bool(active),
    }
    return TemplateResponse(request, "admin/synclog/logs.html", context)


def logs_export_view(request):
    _require_log_reader(request)
    query = LogQuery(request.GET)
    rows = selectors.log_iter(user=request.user, query=query)
    return exports.csv_response(exports.export_filename("logs"), exports.LOG_HEADER, exports.log_rows_csv(rows))
