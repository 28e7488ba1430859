"""Stage 1: the whole order completed by one job, in three service calls (unsafe to retry).

If the email service fails after the charge went through, the engine retries the job from its first
line and the customer is charged again, once per retry (lesson 5).
"""

from __future__ import annotations

from harness import job
from scenarios.shop import app
from scenarios.shop.orders import CONFIRMATION_TEMPLATE, load_order, update_order

__all__ = ["complete_order"]


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
    email_id = app.email().send(
        to=order.email,
        template_id=CONFIRMATION_TEMPLATE,
        template_data={"order_id": order.id},
    )
    request_id = app.fulfillment().request(
        customer_id=order.customer_id,
        address=order.address,
        product_id=order.product_id,
        quantity=order.quantity,
        metadata={"order_id": order.id},
    )
    now = app.now()
    update_order(
        order.id,
        status="completed",
        charge_id=charge.charge_id,
        charged_at=now,
        email_id=email_id,
        emailed_at=now,
        fulfillment_request_id=request_id,
        fulfilled_at=now,
    )
