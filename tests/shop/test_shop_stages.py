"""Each stage of order completion: healthy runs, and the failures each stage does or does not survive."""

from __future__ import annotations

import pytest

from fake_services import FaultRule
from harness.engines.base import EventKind, Job
from harness.world import World
from scenarios.shop import jobs_idempotent, jobs_naive, jobs_split
from scenarios.shop.invariants import (
    charged_once,
    charges_for,
    confirmations_for,
    emailed_once,
    fulfilled_once,
    fulfillments_for,
    order_matches_services,
)
from scenarios.shop.orders import create_order, create_product, create_user, load_order

STAGES = {
    "naive": jobs_naive.complete_order,
    "split": jobs_split.complete_order,
    "idempotent": jobs_idempotent.complete_order,
}
ONE_HOUR = 3600.0


def place(complete_with: Job, *, price_cents: int = 4200) -> int:
    return create_order(create_user(), create_product(price_cents=price_cents), complete_with=complete_with)


def attempts(world: World, job: Job) -> int:
    return sum(1 for e in world.engine.events if e.kind is EventKind.STARTED and e.job == job.name)


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_completes_an_order_on_a_healthy_world(world: World, stage: str) -> None:
    order_id = place(STAGES[stage])
    world.engine.run_until_quiet()

    order = load_order(order_id)
    [charge] = charges_for(world, order_id)
    [email] = confirmations_for(world, order)
    [request] = fulfillments_for(world, order_id)
    assert order.status == "completed"
    assert (order.charge_id, order.email_id, order.fulfillment_request_id) == (
        charge["charge_id"],
        email["email_id"],
        request["request_id"],
    )
    assert order.charged_at is not None and order.fulfilled_at is not None
    for invariant in (charged_once, emailed_once, fulfilled_once, order_matches_services):
        assert invariant(world) == []


@pytest.mark.parametrize("stage", STAGES)
def test_a_declined_charge_stops_the_order(world: World, stage: str) -> None:
    order_id = place(STAGES[stage], price_cents=9999)  # the payments service declines 9999 cents
    world.engine.run_until_quiet()
    order = load_order(order_id)
    assert (order.status, order.decline_reason) == ("declined", "Insufficient funds")
    assert world.services.email.records() == [] and world.services.fulfillment.records() == []


def test_naive_job_charges_again_on_every_retry_while_email_crashes(world: World) -> None:
    world.services.behaviours["email"].crash = True
    order_id = place(jobs_naive.complete_order)
    world.engine.run_until_quiet(max_time=ONE_HOUR)

    tries = attempts(world, jobs_naive.complete_order)
    assert tries > 2
    assert len(charges_for(world, order_id)) == tries
    assert f"order {order_id} was charged {tries} times (expected 1)" in charged_once(world)[0]


def test_split_jobs_charge_once_while_email_crashes(world: World) -> None:
    world.services.behaviours["email"].crash = True
    order_id = place(jobs_split.complete_order)
    world.engine.run_until_quiet(max_time=ONE_HOUR)

    assert attempts(world, jobs_split.send_confirmation_email) > 2
    assert len(charges_for(world, order_id)) == 1
    assert load_order(order_id).status == "charged"

    world.services.behaviours["email"].crash = False
    world.engine.run_until_quiet()
    assert load_order(order_id).status == "completed"
    assert charged_once(world) == []
    # The crashing email service stored every email it answered 503 for: one per failed attempt.
    assert len(confirmations_for(world, load_order(order_id))) == attempts(world, jobs_split.send_confirmation_email)


def _email_sends_then_fails_once(world: World) -> None:
    world.services.schedule("email", FaultRule(fault="503", phase="after", nth=1, operation="send"))


def test_split_job_sends_a_second_email_when_email_sends_then_fails(world: World) -> None:
    _email_sends_then_fails_once(world)
    order_id = place(jobs_split.complete_order)
    world.engine.run_until_quiet()
    assert len(confirmations_for(world, load_order(order_id))) == 2
    assert emailed_once(world) != []


def test_search_before_send_reuses_the_email_that_was_sent_then_failed(world: World) -> None:
    _email_sends_then_fails_once(world)
    order_id = place(jobs_idempotent.complete_order)
    world.engine.run_until_quiet()

    order = load_order(order_id)
    [email] = confirmations_for(world, order)
    assert order.email_id == email["email_id"]
    assert attempts(world, jobs_idempotent.send_confirmation_email) == 2
    assert emailed_once(world) == [] and order_matches_services(world) == []


@pytest.mark.parametrize(
    ("service", "operation", "found"),
    [("payments", "charge", charges_for), ("fulfillment", "request", fulfillments_for)],
)
def test_idempotency_key_makes_a_retry_after_a_lost_answer_harmless(
    world: World, service: str, operation: str, found: object
) -> None:
    world.services.schedule(service, FaultRule(fault="503", phase="after", nth=1, operation=operation))
    order_id = place(jobs_idempotent.complete_order)
    world.engine.run_until_quiet()

    assert len(found(world, order_id)) == 1  # type: ignore[operator]
    assert load_order(order_id).status == "completed"
    assert [charged_once(world), fulfilled_once(world), order_matches_services(world)] == [[], [], []]


@pytest.mark.parametrize(
    ("service", "operation", "found"),
    [("payments", "charge", charges_for), ("fulfillment", "request", fulfillments_for)],
)
def test_without_a_key_the_same_lost_answer_duplicates_the_effect(
    world: World, service: str, operation: str, found: object
) -> None:
    world.services.schedule(service, FaultRule(fault="503", phase="after", nth=1, operation=operation))
    order_id = place(jobs_split.complete_order)
    world.engine.run_until_quiet()
    assert len(found(world, order_id)) == 2  # type: ignore[operator]
