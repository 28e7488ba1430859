"""Stage 2: the order completed by three chained jobs, so a failing step retries alone.

Charging enqueues the email job, which enqueues the fulfillment job. An email outage no longer charges
the customer again, but each step still repeats its own effect when it is retried (lessons 5 and 6).
"""

from __future__ import annotations

from harness import job
from scenarios.shop import app
from scenarios.shop.orders import CONFIRMATION_TEMPLATE, load_order, update_order

__all__ = ["complete_order", "request_fulfillment", "send_confirmation_email"]


@job(queue="high")
def complete_order(order_id: int) -> None:
    order = load_order(order_id)
    charge = app.payments().charge(
        customer_id=order.customer_id,
        payment_method_id=order.payment_method_id,
        amount_cents=order.amount_cents,
        metadata={"order_id": order.id},
    )
    if charge.status != "success":
        update_order(order.id, status="declined", decline_reason=charge.explanation)
        return
    update_order(order.id, status="charged", charge_id=charge.charge_id, charged_at=app.now())
    send_confirmation_email.enqueue(order.id)


@job(queue="high")
def send_confirmation_email(order_id: int) -> None:
    order = load_order(order_id)
    email_id = app.email().send(
        to=order.email,
        template_id=CONFIRMATION_TEMPLATE,
        template_data={"order_id": order.id},
    )
    update_order(order.id, status="emailed", email_id=email_id, emailed_at=app.now())
    request_fulfillment.enqueue(order.id)


@job(queue="high")
def request_fulfillment(order_id: int) -> None:
    order = load_order(order_id)
    request_id = app.fulfillment().request(
        customer_id=order.customer_id,
        address=order.address,
        product_id=order.product_id,
        quantity=order.quantity,
        metadata={"order_id": order.id},
    )
    update_order(order.id, status="completed", fulfillment_request_id=request_id, fulfilled_at=app.now())
