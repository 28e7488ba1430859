"""Placing and reading orders: the shop's "web request" side and the row updates the jobs make.

`create_order` is what a controller would call: it saves the order in one transaction, commits, and only
then enqueues the job that completes it. Enqueueing inside the transaction would hold the row locks
while talking to the queue, and a worker could pick the job up before the order is visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select

from scenarios.shop import app, db

if TYPE_CHECKING:
    from harness.engines.base import Job

__all__ = [
    "CONFIRMATION_TEMPLATE",
    "Order",
    "OrderNotFound",
    "all_orders",
    "create_order",
    "create_product",
    "create_user",
    "load_order",
    "save_order",
    "update_order",
]


#: The email template of the order confirmation; searched for before sending (lesson 6).
CONFIRMATION_TEMPLATE = "order-confirmation"


class OrderNotFound(LookupError):
    """A job was given the id of an order the database does not have."""


@dataclass(frozen=True)
class Order:
    id: int
    user_id: int
    product_id: int
    quantity: int
    amount_cents: int
    address: str
    email: str
    payment_method_id: str
    status: str
    created_at: float
    charge_id: str | None = None
    charged_at: float | None = None
    decline_reason: str | None = None
    email_id: str | None = None
    emailed_at: float | None = None
    fulfillment_request_id: str | None = None
    fulfilled_at: float | None = None
    announced_at: float | None = None

    @property
    def customer_id(self) -> str:
        """How the payments and fulfillment services know this customer."""
        return f"cus_{self.user_id}"


def create_user(
    *,
    name: str = "Pat Doe",
    email: str = "pat@example.com",
    payment_method_id: str = "pm_visa",
    address: str = "1 Main St, Springfield",
) -> int:
    with db.database().begin() as conn:
        result = conn.execute(
            db.users.insert().values(name=name, email=email, payment_method_id=payment_method_id, address=address)
        )
        return int(result.inserted_primary_key[0])


def create_product(*, name: str = "Flux capacitor", price_cents: int = 4200) -> int:
    with db.database().begin() as conn:
        result = conn.execute(db.products.insert().values(name=name, price_cents=price_cents))
        return int(result.inserted_primary_key[0])


def save_order(user_id: int, product_id: int, quantity: int = 1) -> int:
    """Save a pending order in one committed transaction and return its id (no job is enqueued)."""
    with db.database().begin() as conn:
        user = conn.execute(select(db.users).where(db.users.c.id == user_id)).mappings().one()
        product = conn.execute(select(db.products).where(db.products.c.id == product_id)).mappings().one()
        result = conn.execute(
            db.orders.insert().values(
                user_id=user_id,
                product_id=product_id,
                quantity=quantity,
                amount_cents=product["price_cents"] * quantity,
                address=user["address"],
                email=user["email"],
                payment_method_id=user["payment_method_id"],
                status="pending",
                created_at=app.now(),
            )
        )
        return int(result.inserted_primary_key[0])


def create_order(user_id: int, product_id: int, quantity: int = 1, *, complete_with: Job) -> int:
    """Place an order: commit it, then enqueue `complete_with`, the job that completes it.

    The caller names the job: each lesson chooses its stage of the book (naive, split or idempotent), and
    the data layer takes no side. Enqueue goes to the current engine (`with engine.activate():`).
    """
    order_id = save_order(user_id, product_id, quantity)
    complete_with.enqueue(order_id)
    return order_id


# Built once: a statement built on every call costs more than running it does (jobs load and update the
# order at nearly every step, thousands of times in an exploration).
_ORDER_BY_ID = select(db.orders).where(db.orders.c.id == bindparam("order_id"))
_ALL_ORDERS = select(db.orders).order_by(db.orders.c.id)
_UPDATE_ORDER = db.orders.update().where(db.orders.c.id == bindparam("the_order_id"))


def load_order(order_id: int) -> Order:
    with db.database().connect() as conn:
        row = conn.execute(_ORDER_BY_ID, {"order_id": order_id}).mappings().first()
    if row is None:
        raise OrderNotFound(f"order {order_id} does not exist; was it committed before the job ran?")
    return Order(**row)


def all_orders() -> list[Order]:
    with db.database().connect() as conn:
        rows = conn.execute(_ALL_ORDERS).mappings().all()
    return [Order(**row) for row in rows]


def update_order(order_id: int, **values: Any) -> None:
    """Record what a job did on the order row, in a transaction of its own."""
    with db.database().begin() as conn:
        conn.execute(_UPDATE_ORDER, {"the_order_id": order_id, **values})
