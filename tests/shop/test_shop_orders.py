"""Placing an order: the row is committed before the completion job is enqueued, onto `high`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from harness.engines.base import JobRecord
from harness.world import World
from scenarios.shop import db, jobs_idempotent, jobs_naive
from scenarios.shop.orders import (
    OrderNotFound,
    create_order,
    create_product,
    create_user,
    load_order,
    save_order,
)


def _visible_elsewhere(url: str, order_id: int) -> bool:
    """Whether another connection (another process, say a worker) can see the order row."""
    other = create_engine(url)
    try:
        with other.connect() as conn:
            return conn.execute(select(db.orders.c.id).where(db.orders.c.id == order_id)).first() is not None
    finally:
        other.dispose()


def test_order_is_committed_before_its_job_is_enqueued(world: World, shop_db: str) -> None:
    seen: list[tuple[str, bool]] = []

    def watch_enqueue(record: JobRecord, call_next: Callable[[], Any]) -> Any:
        seen.append((record.queue, _visible_elsewhere(shop_db, record.args[0])))
        return call_next()

    world.engine.hooks.client_middleware.append(watch_enqueue)
    order_id = create_order(create_user(), create_product(), 2, complete_with=jobs_naive.complete_order)

    assert seen == [("high", True)], "the job was enqueued before the order row was visible to a worker"
    [queued] = world.engine.queued()
    assert (queued.job, queued.args) == (jobs_naive.complete_order.name, [order_id])


def test_create_order_enqueues_the_job_the_caller_names(world: World) -> None:
    order_id = create_order(create_user(), create_product(), complete_with=jobs_idempotent.complete_order)
    assert [(r.job, r.args, r.queue) for r in world.engine.queued()] == [
        (jobs_idempotent.complete_order.name, [order_id], "high")
    ]


def test_create_order_takes_no_stage_by_default(world: World) -> None:
    with pytest.raises(TypeError, match="complete_with"):
        create_order(create_user(), create_product())  # type: ignore[call-arg]
    assert world.engine.queued() == []


def test_saved_order_copies_price_address_and_clock_time(world: World) -> None:
    user_id = create_user(address="7 Elm St", email="sam@example.com")
    product_id = create_product(price_cents=1250)
    world.clock.advance(90)
    order = load_order(save_order(user_id, product_id, quantity=3))
    assert (order.amount_cents, order.address, order.email) == (3750, "7 Elm St", "sam@example.com")
    assert order.status == "pending"
    assert order.created_at == world.clock.time()


def test_reset_data_restarts_order_ids(world: World) -> None:
    user_id, product_id = create_user(), create_product()
    first = save_order(user_id, product_id)
    db.reset_data()
    assert save_order(create_user(), create_product()) == first


def test_loading_a_missing_order_says_what_to_check(shop_db: str) -> None:
    with pytest.raises(OrderNotFound, match="order 404 does not exist"):
        load_order(404)


def test_a_sqlite_shop_database_is_in_wal_mode_for_every_connection(tmp_path) -> None:
    # The file keeps the mode: a connection opened after a simulated crash asks for no journal pragma.
    url = f"sqlite:///{tmp_path / 'wal.sqlite3'}"
    try:
        engine = db.configure_database(url)
        db.dispose()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        other = create_engine(url)  # another process's connection, with none of the shop's pragmas
        try:
            with other.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        finally:
            other.dispose()
    finally:
        db.configure_database(None)
