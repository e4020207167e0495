from django.apps import AppConfig
from django.db.models.signals import post_migrate


def ensure_purge_schedule(sender, **kwargs) -> None:
    """The daily retention purge, created idempotently after migrate (never at import)."""
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name="hookhub: purge old logs",
        defaults={"func": "synclog.tasks.purge_old_logs", "schedule_type": Schedule.DAILY, "repeats": -1},
    )


class SynclogConfig(AppConfig):
    name = "synclog"
    verbose_name = "Logs"

    def ready(self) -> None:
        from hub.admin_panels import customer_panel_add

        from .panels import customer_logs_panel

        post_migrate.connect(ensure_purge_schedule, sender=self, dispatch_uid="synclog-purge-schedule")
        customer_panel_add(customer_logs_panel)
