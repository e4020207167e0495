"""The outbound delivery engine, one module per concern (docs/outbound-webhooks.md).

* ``clock``    the engine's clock (tests move it instead of waiting);
* ``state``    the delivery state machine: the allowed moves and the one
               function that changes a delivery's state;
* ``outbox``   writing Delivery rows in the caller's transaction and asking
               django-q2 for a task when it commits;
* ``claim``    taking due deliveries (skip-locked, with a lease), releasing them;
* ``attempt``  sending one claimed delivery and recording the attempt and the
               new state (attempt rows are built by ``synclog.attempts``);
* ``run``      the task body: claim, send and record in batches within a time
               budget; the minute sweep and the fast wake-up check;
* ``stopping`` the graceful stop of a worker (SIGTERM);
* ``sweeper``  the wake-up loop inside each ``qcluster`` process.

The CRM sync's engine code (its cache of actions, remote ids, context) lives
in ``hooks.outbound.crm``.
"""
