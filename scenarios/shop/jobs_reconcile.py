"""A reconciler for the idempotent stage: the answer to a broker that forgets.

A Redis restarted without persistence drops every queued, scheduled and retrying job, and nothing raises:
an order charged a minute ago simply never gets its email or its shipment. The database still says where
each order stopped, so a job run by a scheduler outside the broker (cron) finds the orders stuck longer
than `STUCK_AFTER` and enqueues their next step again. The idempotent stage's jobs skip what is done and
search before emailing, so a step enqueued twice does no harm.
"""

from __future__ import annotations

from harness import job
from scenarios.shop import app, jobs_idempotent
from scenarios.shop.orders import all_orders

__all__ = ["STUCK_AFTER", "reconcile_orders"]

#: How long an order may sit between two steps before the reconciler pushes it on (virtual seconds).
STUCK_AFTER = 15 * 60.0

#: The step that follows each status an order can be stuck in.
_NEXT = {
    "pending": jobs_idempotent.complete_order,
    "charged": jobs_idempotent.send_confirmation_email,
    "emailed": jobs_idempotent.request_fulfillment,
}


@job(queue="default", retry=False)
def reconcile_orders() -> None:
    now = app.now()
    for order in all_orders():
        step = _NEXT.get(order.status)
        since = max(t for t in (order.created_at, order.charged_at, order.emailed_at) if t is not None)
        if step is not None and now - since >= STUCK_AFTER:
            step.enqueue(order.id)
