"""Lesson 9, a job that runs again without failing: a deploy stops the worker while a slow job runs. After
the shutdown timeout the job goes back to the head of its queue (not to the retry set, not reported) and
the next worker runs it; the idempotent stage still charges and emails once, the naive job charges twice.

The shutdown is Sidekiq's TERM on the reference engine: stop fetching, wait `shutdown_timeout` seconds
(25 by default) for the running job, then push it back and interrupt it.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness import Job
from harness.engines.base import EventKind
from harness.world import World
from scenarios.shop import drop_process_state, jobs_idempotent, jobs_naive, load_order, reset_data
from scenarios.shop.invariants import charged_once, charges_for, confirmations_for, fulfillments_for
from scenarios.shop.orders import create_order, create_product, create_user

#: Seconds each call to the slow email service takes: longer than the shutdown timeout (25 s by default).
SLOW_EMAIL_S = 60.0
#: When the TERM arrives, in seconds after the order was placed: while the first email call is running.
TERM_AFTER_S = 10.0

#: What each engine's own worker does on SIGTERM, for engines whose in-process mode has no shutdown.
NO_SHUTDOWN = {
    "dramatiq": "the in-process Dramatiq engine has no shutdown to drive; Dramatiq's worker, on SIGTERM, "
    "starts no new message, waits up to --worker-shutdown-timeout (10 min) for running actors, requeues "
    "the messages it had prefetched and exits, leaving a message still running unacknowledged until the "
    "broker redelivers it",
    "rq": "the in-process RQ engine has no shutdown to drive; RQ's worker, on SIGTERM, stops taking jobs "
    "and waits for the running job to finish with no time limit (a second signal kills the work horse): "
    "nothing is pushed back",
    "celery": "the in-process Celery engine has no shutdown to drive; a Celery worker, on SIGTERM, stops "
    "consuming and waits for its running tasks to finish with no time limit (warm shutdown): nothing is "
    "pushed back",
}


def _needs_shutdown(world: World, engine_name: str) -> None:
    if not callable(getattr(world.engine, "shutdown", None)):
        pytest.skip(NO_SHUTDOWN.get(engine_name, f"the {engine_name} engine has no shutdown to drive"))


def _stop_the_worker_mid_email(world: World, stage: Job) -> tuple[int, float]:
    """Place an order completed by `stage`, with email slow; TERM arrives while a job waits on email.
    Runs the worker until it has stopped; returns the order id and when the TERM arrived."""
    engine: Any = world.engine
    reset_data()
    customer, product = create_user(), create_product()
    world.services.behaviours["email"].sleep = SLOW_EMAIL_S
    with engine.activate():
        order_id = create_order(customer, product, complete_with=stage)
    term_at = world.clock.time() + TERM_AFTER_S
    engine.shutdown(at=term_at)
    engine.run_until_quiet()
    return order_id, term_at


def _restart(world: World) -> None:
    """A new worker process: nothing held in memory, fetching again."""
    drop_process_state()
    engine: Any = world.engine
    engine.start()
    engine.run_until_quiet()


def _events(world: World, *kinds: EventKind) -> list[Any]:
    return [e for e in world.engine.events if e.kind in kinds]


def test_a_job_outliving_the_shutdown_timeout_is_pushed_back_and_completes_once(shop_world, engine_name):
    world = shop_world
    _needs_shutdown(world, engine_name)
    order_id, term_at = _stop_the_worker_mid_email(world, jobs_idempotent.complete_order)
    engine: Any = world.engine

    [pushed] = _events(world, EventKind.PUSHED_BACK)
    assert pushed.job == jobs_idempotent.send_confirmation_email.name
    # It was still running when the timeout ran out after the TERM, and only then was interrupted.
    assert pushed.detail["deadline"] == term_at + engine.shutdown_timeout
    assert pushed.time >= pushed.detail["deadline"]
    # Not lost: back at the head of its queue, the same job, with no retry counted against it.
    waiting = engine.queued(pushed.detail["queue"])
    assert [(r.id, r.retry_count) for r in waiting[:1]] == [(pushed.job_id, None)]
    # Not a failure: no retry set, no dead set, nobody paged.
    assert engine.retries() == [] and engine.dead() == []
    assert not _events(world, EventKind.FAILED, EventKind.RETRY_SCHEDULED, EventKind.ERROR_HANDLER_CALLED)
    assert world.services.error_catcher.records() == []
    order = load_order(order_id)
    assert len(charges_for(world, order_id)) == 1 and confirmations_for(world, order) == []

    _restart(world)
    reruns = [e for e in _events(world, EventKind.STARTED, EventKind.SUCCEEDED) if e.job_id == pushed.job_id]
    assert [e.kind for e in reruns] == [EventKind.STARTED, EventKind.STARTED, EventKind.SUCCEEDED]
    order = load_order(order_id)
    assert order.status == "completed"
    assert len(charges_for(world, order_id)) == 1
    assert [r["email_id"] for r in confirmations_for(world, order)] == [order.email_id]
    assert [r["request_id"] for r in fulfillments_for(world, order_id)] == [order.fulfillment_request_id]
    assert engine.queued() == [] and engine.retries() == []


def test_the_naive_job_pushed_back_after_charging_charges_again(shop_world, engine_name):
    world = shop_world
    _needs_shutdown(world, engine_name)
    order_id, _ = _stop_the_worker_mid_email(world, jobs_naive.complete_order)

    [pushed] = _events(world, EventKind.PUSHED_BACK)
    assert pushed.job == jobs_naive.complete_order.name
    # Interrupted waiting on email, after the charge went through: a push back is no rollback.
    assert len(charges_for(world, order_id)) == 1
    assert not _events(world, EventKind.FAILED)

    _restart(world)
    # The next worker runs the whole job from its first line, and the customer pays twice.
    charges = charges_for(world, order_id)
    assert len(charges) == 2 and charges[0]["charge_id"] != charges[1]["charge_id"]
    assert charged_once(world) == [
        f"order {order_id} was charged 2 times (expected 1): {charges[0]['charge_id']}, {charges[1]['charge_id']}"
    ]
    assert len(confirmations_for(world, load_order(order_id))) == 1
