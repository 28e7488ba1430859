"""Stage 3: the chained jobs made idempotent, so any of them can run again without a second effect.

Three tools, one per kind of service: the order row records each step and a rerun skips what is done;
payments and fulfillment get an idempotency key naming the one operation (a repeat returns the first
answer); email has no key, so the job searches for the confirmation it may already have sent (lessons 6-7).
"""

from __future__ import annotations

from harness import job
from scenarios.shop import app
from scenarios.shop.orders import CONFIRMATION_TEMPLATE, Order, load_order, update_order

__all__ = ["complete_order", "idempotency_key", "request_fulfillment", "send_confirmation_email"]


def idempotency_key(operation: str, order_id: int) -> str:
    """A key that names one operation on one order and reads well in a log: `charge-order-1234`."""
    return f"{operation}-order-{order_id}"


@job(queue="high")
def complete_order(order_id: int) -> None:
    order = load_order(order_id)
    if order.status == "declined":
        return
    if order.charge_id is None:
        charge = app.payments().charge(
            customer_id=order.customer_id,
            payment_method_id=order.payment_method_id,
            amount_cents=order.amount_cents,
            metadata={"order_id": order.id, "idempotency_key": idempotency_key("charge", order.id)},
        )
        if charge.status != "success":
            update_order(order.id, status="declined", decline_reason=charge.explanation)
            return
        update_order(order.id, status="charged", charge_id=charge.charge_id, charged_at=app.now())
    send_confirmation_email.enqueue(order.id)


@job(queue="high")
def send_confirmation_email(order_id: int) -> None:
    order = load_order(order_id)
    if order.email_id is None:
        email_id = _sent_confirmation(order) or app.email().send(
            to=order.email,
            template_id=CONFIRMATION_TEMPLATE,
            template_data={"order_id": order.id},
        )
        update_order(order.id, status="emailed", email_id=email_id, emailed_at=app.now())
    request_fulfillment.enqueue(order.id)


def _sent_confirmation(order: Order) -> str | None:
    """The id of a confirmation already sent for this order (the service may have sent it, then failed)."""
    for sent in app.email().search(email=order.email, template_id=CONFIRMATION_TEMPLATE):
        if (sent.get("template_data") or {}).get("order_id") == order.id:
            return str(sent["email_id"])
    return None


@job(queue="high")
def request_fulfillment(order_id: int) -> None:
    order = load_order(order_id)
    if order.fulfillment_request_id is not None:
        return
    request_id = app.fulfillment().request(
        customer_id=order.customer_id,
        address=order.address,
        product_id=order.product_id,
        quantity=order.quantity,
        metadata={"order_id": order.id, "idempotency_key": idempotency_key("fulfillment", order.id)},
    )
    update_order(order.id, status="completed", fulfillment_request_id=request_id, fulfilled_at=app.now())
