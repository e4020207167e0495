from django.apps import AppConfig
from django.db.models.signals import post_migrate

SWEEP_SCHEDULE_NAME = "hookhub: outbound delivery sweeper"


def ensure_sweep_schedule(sender, **kwargs) -> None:
    """The every-minute sweep (a safety net behind each cluster's sweeper thread),
    created idempotently after migrate (never at import)."""
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name=SWEEP_SCHEDULE_NAME,
        defaults={
            "func": "hooks.outbound.tasks.sweep",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )


class OutboundConfig(AppConfig):
    name = "hooks.outbound"
    label = "outbound"
    verbose_name = "Outbound webhooks"

    def ready(self) -> None:
        from django.apps import apps
        from django.db.models.signals import post_save
        from django_q.signals import post_spawn

        from hub import metrics

        from . import checks, crm, selectors  # noqa: F401 - checks registers the system check
        from .engine import health, stopping

        crm.register()
        post_migrate.connect(ensure_sweep_schedule, sender=self, dispatch_uid="outbound-sweep-schedule")
        post_spawn.connect(stopping.worker_prepare, dispatch_uid="outbound-worker-graceful-stop")
        metrics.outbox_register(depth=selectors.outbox_depth, oldest_due_age=selectors.outbox_oldest_due_age)
        # Switching an auto-disabled destination back on in its form re-enables it (paused deliveries resume).
        for model in (apps.get_model("outbound", "CrmSyncAction"), apps.get_model("rules", "EventRule")):
            post_save.connect(health.on_config_saved, sender=model, dispatch_uid=f"health-reenable-{model.__name__}")
