"""Platform endpoints, one module per contract under hooks/inbound/.

Each adapter declares its routes as ``urlpatterns`` in its own module
(``hooks/inbound/<contract>.py``) next to its views; this file joins them.
Anything else under /hooks/ answers a JSON 404 (platforms never get an HTML
page). An endpoint written with a trailing slash is served as without it: the
adapters' own patterns accept one (``(?:/+)?$``; the group keeps it out of
the OpenAPI paths).
"""

from django.urls import re_path
from django.views.decorators.csrf import csrf_exempt

from hooks.inbound import calllog, m8com, omnidesk, servicehooks
from hooks.inbound.common import error_response
from hub.exceptions import NotFound

ENDPOINTS = (
    "GET /hooks/omnidesk/<brand>/customerlookup, GET /hooks/m8com/<brand>/lookup, "
    "POST /hooks/m8com/<brand>/calllog, POST /hooks/servicehooks/<brand>/<event-type>"
)


@csrf_exempt
def endpoint_not_found(request, rest: str):
    return error_response(NotFound(f"No endpoint at {request.path}. The endpoints are: {ENDPOINTS}."))


urlpatterns = [
    *omnidesk.urlpatterns,
    *m8com.urlpatterns,
    *calllog.urlpatterns,
    *servicehooks.urlpatterns,
    re_path(r"^(?P<rest>.*)$", endpoint_not_found, name="hooks-not-found"),
]
