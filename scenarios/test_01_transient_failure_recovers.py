"""Lesson 1: payments crashes, the job fails and is retried with backoff, and succeeds once payments is
back. Nobody had to act: one charge, one email, one shipment, and the retry waited in the retry set."""

from __future__ import annotations

from harness.engines.base import EventKind
from scenarios.shop import jobs_idempotent, load_order
from scenarios.shop.invariants import charges_for
from scenarios.shop.scenarios import place_order


def test_a_payments_outage_heals_by_retry(shop_world):
    world = shop_world
    [order_id] = place_order(world)
    world.services.behaviours["payments"].crash = True
    with world.engine.activate():
        world.engine.enqueue(jobs_idempotent.complete_order, order_id)
        while not world.engine.retries() and world.engine.step():
            pass
    assert world.engine.retries(), "the failed charge should wait in the retry set"
    assert charges_for(world, order_id) == []

    world.services.behaviours["payments"].crash = False
    world.engine.run_until_quiet()
    assert len(charges_for(world, order_id)) == 1
    assert load_order(order_id).status == "completed"
    assert any(e.kind is EventKind.RETRY_SCHEDULED for e in world.engine.events)
    assert world.services.error_catcher.records() == []  # transient: nobody was paged
