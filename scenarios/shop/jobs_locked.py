"""The confirmation email when the same job may run twice at once (lesson 15).

The idempotent stage searches for a confirmation before sending one. Under retries that is enough: a
retry runs after the failed attempt, and finds what it sent. Two deliveries running at the same moment
both search before either sends, find nothing, and both send. Searching cannot close that window; one
writer at a time can. Here a Redis lock per order (`SET NX` with a token) makes the second delivery stop
with `LockBusy`; the engine runs it again later, and by then the first one has recorded the email.
"""

from __future__ import annotations

from harness import job
from scenarios.shop import app, locks
from scenarios.shop.jobs_idempotent import _sent_confirmation, request_fulfillment
from scenarios.shop.orders import CONFIRMATION_TEMPLATE, load_order, update_order

__all__ = ["send_confirmation_email"]


@job(queue="high", transient=(locks.LockBusy,))
def send_confirmation_email(order_id: int) -> None:
    with locks.held(f"confirmation:{order_id}"):
        order = load_order(order_id)  # read under the lock: a delivery that held it before may have sent
        if order.email_id is None:
            email_id = _sent_confirmation(order) or app.email().send(
                to=order.email,
                template_id=CONFIRMATION_TEMPLATE,
                template_data={"order_id": order.id},
            )
            update_order(order.id, status="emailed", email_id=email_id, emailed_at=app.now())
    request_fulfillment.enqueue(order_id)
