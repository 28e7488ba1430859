"""An example shop whose background jobs charge, email and ship through fake third-party services.

It re-enacts the book's system: placing an order commits it and enqueues a completion job; the jobs
exist in each stage of retry-safety (`jobs_naive`, `jobs_split`, `jobs_idempotent`, `jobs_noretry`), and
`scenarios.shop.scenarios` turns them into scenarios the explorer checks.
"""

from __future__ import annotations

from scenarios.shop.app import connect, drop_process_state, now
from scenarios.shop.db import configure_database, database, reset_data
from scenarios.shop.orders import (
    CONFIRMATION_TEMPLATE,
    Order,
    OrderNotFound,
    all_orders,
    create_order,
    create_product,
    create_user,
    load_order,
    save_order,
)

__all__ = [
    "CONFIRMATION_TEMPLATE",
    "Order",
    "OrderNotFound",
    "all_orders",
    "configure_database",
    "connect",
    "create_order",
    "create_product",
    "create_user",
    "database",
    "drop_process_state",
    "load_order",
    "now",
    "reset_data",
    "save_order",
]
