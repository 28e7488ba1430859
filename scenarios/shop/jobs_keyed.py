"""Trusting the key alone: one job charges, requests fulfillment and records both at the end, sending an
`Idempotency-Key` with each request so that a retry gets the first answer back instead of a second effect.

That holds while the provider still knows the key. Payment providers keep a key for about 24 hours, and a
job's retries can run for weeks (Sidekiq's 25 span about 21 days): when fulfillment is down for longer
than a day, the retry that comes after the payments service dropped the key is a new charge (lesson 14).

`ship_order_recorded` is the fix: it writes the charge to the order row before anything else can fail,
and a retry skips the charge it finds there. The key still covers a retry within the day (the charge went
through but its answer was lost); the row covers every retry after that.
"""

from __future__ import annotations

from typing import Any

from harness import job
from scenarios.shop import app
from scenarios.shop.jobs_idempotent import idempotency_key
from scenarios.shop.orders import Order, load_order, update_order

__all__ = ["ship_order", "ship_order_recorded"]


@job(queue="high")
def ship_order(order_id: int) -> None:
    order = load_order(order_id)
    charge = _charge(order)
    if charge.status != "success":
        update_order(order.id, status="declined", decline_reason=charge.explanation)
        return
    request_id = _request_fulfillment(order)
    now = app.now()
    update_order(order.id, status="completed", charge_id=charge.charge_id, charged_at=now,
                 fulfillment_request_id=request_id, fulfilled_at=now)


@job(queue="high")
def ship_order_recorded(order_id: int) -> None:
    order = load_order(order_id)
    if order.charge_id is None:
        charge = _charge(order)
        if charge.status != "success":
            update_order(order.id, status="declined", decline_reason=charge.explanation)
            return
        update_order(order.id, status="charged", charge_id=charge.charge_id, charged_at=app.now())
    request_id = _request_fulfillment(order)
    update_order(order.id, status="completed", fulfillment_request_id=request_id, fulfilled_at=app.now())


def _charge(order: Order) -> Any:
    return app.payments().charge(
        customer_id=order.customer_id,
        payment_method_id=order.payment_method_id,
        amount_cents=order.amount_cents,
        metadata={"order_id": order.id},
        idempotency_key=idempotency_key("charge", order.id),
    )


def _request_fulfillment(order: Order) -> str:
    return app.fulfillment().request(
        customer_id=order.customer_id,
        address=order.address,
        product_id=order.product_id,
        quantity=order.quantity,
        metadata={"order_id": order.id},
        idempotency_key=idempotency_key("fulfillment", order.id),
    )
