from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo brand loader (`manage.py demo`, run by `make run`).

    It sits above every app (it creates brands, customers, CRM syncs and rules), so
    it lives in its own app that may import all of them while no app imports it;
    the dependency rules are in pyproject.toml ([tool.importlinter])."""

    name = "demo"
    label = "demo"
    verbose_name = "Demo"
