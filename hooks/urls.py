"""Platform endpoints, one module per contract under hooks/inbound/.

Adapters register their routes in ``hooks/inbound/<contract>.py`` as
``urlpatterns`` lists; this file only joins them.
"""

from importlib import import_module

ADAPTERS = ["omnidesk", "m8com", "calllog", "servicehooks"]

urlpatterns: list = []
for _name in ADAPTERS:
    try:
        _module = import_module(f"hooks.inbound.{_name}")
    except ModuleNotFoundError as exc:  # an adapter not written yet
        if exc.name != f"hooks.inbound.{_name}":
            raise
        continue
    urlpatterns += getattr(_module, "urlpatterns", [])
