"""How fast the example shop resets and completes orders: the explorer pays both on every plan it runs.

`shop.reset_setup_per_s` is a scenario's setup (empty the tables, create a customer, a product and an
order) on the default SQLite file; `shop.pg_reset_setup_per_s` the same on PostgreSQL when one answers;
`shop.orders_completed_per_s` runs the idempotent chain of three jobs on the sim engine, services in-process.
"""

from __future__ import annotations

import os
import time
from typing import Any

PG_URL = os.environ.get("DATABASE_URL") or "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _setup_once() -> int:
    from scenarios.shop import db
    from scenarios.shop.orders import create_product, create_user, save_order

    db.reset_data()
    return save_order(create_user(), create_product())


def _rate(fn: Any, n: int) -> float:
    fn()  # warm caches (statement compilation, connections) outside the measurement
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def _complete_orders(n: int) -> float:
    from harness.world import World
    from scenarios.shop import db, jobs_idempotent
    from scenarios.shop.middleware import configure

    with World.build("sim", seed=0) as world:
        configure(world)

        def one() -> None:
            world.reset()
            order_id = _setup_once()
            with world.engine.activate():
                jobs_idempotent.complete_order.enqueue(order_id)
                world.engine.run_until_quiet()

        rate = _rate(one, n)
    db.dispose()
    return rate


def run(quick: bool) -> dict[str, dict[str, Any]]:
    from scenarios.shop import db

    n = 50 if quick else 500
    figures: dict[str, dict[str, Any]] = {}
    sqlite_url = db.configure_database("sqlite:///" + os.path.join(_tmpdir(), "bench-shop.sqlite3"))
    figures["shop.reset_setup_per_s"] = {
        "value": _rate(_setup_once, n),
        "unit": "runs/s",
        "note": f"reset + customer, product, order on {sqlite_url.dialect.name}",
    }
    figures["shop.orders_completed_per_s"] = {
        "value": _complete_orders(n // 2),
        "unit": "orders/s",
        "note": "idempotent stage, 3 chained jobs, sim engine, services in-process, incl. reset",
    }
    try:
        db.configure_database(PG_URL)
        figures["shop.pg_reset_setup_per_s"] = {
            "value": _rate(_setup_once, max(10, n // 10)),
            "unit": "runs/s",
            "note": "reset + customer, product, order on PostgreSQL",
        }
    except Exception as exc:  # no server here: the SQLite figures still stand
        print(f"bench_shop: PostgreSQL skipped ({type(exc).__name__})")
    finally:
        db.dispose()
    return figures


def _tmpdir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="bench-shop-")
