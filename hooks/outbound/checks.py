"""System checks for the delivery engine's timing settings (``manage.py check``,
and every management command including ``qcluster``, refuses them).

* HUB_DELIVERY_LEASE_SECONDS must be above the longest webhook timeout plus a
  margin: a shorter lease lets another worker take a delivery that is still
  being sent.
* django-q2: ``retry`` > ``timeout`` > the delivery task's budget plus one
  longest request. The ORM broker hands an unacknowledged task to another
  worker after ``retry`` seconds, and the Sentinel kills a task running longer
  than ``timeout``.
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register

from .engine import claim, run
from .models import TIMEOUT_MAX


@register("hookhub")
def delivery_timing_check(app_configs=None, **kwargs) -> list[Error]:
    errors = []
    lease = getattr(settings, "HUB_DELIVERY_LEASE_SECONDS", 60)
    if lease <= claim.lease_floor():
        errors.append(
            Error(
                f"HUB_DELIVERY_LEASE_SECONDS is {lease} s; it must be above {claim.lease_floor()} s "
                f"(the longest webhook timeout, {TIMEOUT_MAX} s, plus a {claim.LEASE_MARGIN_SECONDS} s margin).",
                hint="A shorter lease lets a second worker send a delivery that is still being sent. "
                "The default is 60.",
                id="hookhub.E001",
            )
        )
    q_cluster = getattr(settings, "Q_CLUSTER", {})
    timeout, retry = q_cluster.get("timeout"), q_cluster.get("retry")
    task_longest = run.RUN_BUDGET_SECONDS + TIMEOUT_MAX + claim.LEASE_MARGIN_SECONDS
    if timeout is not None and timeout <= task_longest:
        errors.append(
            Error(
                f"Q_CLUSTER['timeout'] is {timeout} s; it must be above {task_longest} s (the delivery task's "
                f"{run.RUN_BUDGET_SECONDS} s budget plus one {TIMEOUT_MAX} s request and a "
                f"{claim.LEASE_MARGIN_SECONDS} s margin).",
                hint="django-q2 kills a task that runs longer than its timeout, in the middle of a request.",
                id="hookhub.E002",
            )
        )
    if retry is not None and timeout is not None and retry <= timeout:
        errors.append(
            Error(
                f"Q_CLUSTER['retry'] ({retry} s) must be above Q_CLUSTER['timeout'] ({timeout} s).",
                hint="With the ORM broker a task still running after 'retry' seconds is given to a second worker.",
                id="hookhub.E003",
            )
        )
    return errors
