"""Platform endpoints, one module per contract under hooks/inbound/.

Each adapter declares its routes as ``urlpatterns`` in its own module
(``hooks/inbound/<contract>.py``) next to its views; this file joins them.
"""

from hooks.inbound import calllog, m8com, omnidesk, servicehooks

urlpatterns = [
    *omnidesk.urlpatterns,
    *m8com.urlpatterns,
    *calllog.urlpatterns,
    *servicehooks.urlpatterns,
]
