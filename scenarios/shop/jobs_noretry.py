"""Stage 4: a job that cannot be made idempotent, so it is never retried (lesson 8).

The sales channel's chat webhook has no idempotency key and no way to ask what was posted, so a retry
after a lost answer would post twice. With `retry=0` the first failure sends the job to the dead set, and
the shop's death handler tells a person, who can check the channel and post by hand.
"""

from __future__ import annotations

from harness import job
from scenarios.shop import app
from scenarios.shop.orders import load_order, update_order

__all__ = ["SALES_CHANNEL", "announce_order"]

SALES_CHANNEL = "#sales"


@job(queue="default", retry=0)
def announce_order(order_id: int) -> None:
    order = load_order(order_id)
    if order.announced_at is not None:
        return
    text = f"New order {order.id}: {order.quantity} x product {order.product_id}, {order.amount_cents} cents"
    app.chat().post(text=text, channel=SALES_CHANNEL)
    update_order(order.id, announced_at=app.now())
