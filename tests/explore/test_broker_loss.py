"""A broker that forgets, as the explorer sees it: the plan step and its JSON form, the story, the
business-outcome monitor, and periodic jobs that run on a timer outside the broker."""

from __future__ import annotations

from typing import Any

import pytest

from fake_services.clients import PaymentsClient
from harness import job
from harness.errors import ConfigurationError
from harness.explore import Explorer, Scenario, explore
from harness.injection.plans import BrokerLoss, as_plan, plan_to_json
from harness.invariants import completed_within

STATE: dict[str, Any] = {}


def configure(world: Any) -> None:
    STATE["payments"] = PaymentsClient(world.base_url, http=world.http)


def setup(world: Any) -> list[int]:
    STATE["orders"] = {7: [world.clock.time(), None]}
    return [7]


@job(retry=3)
def charge(order_id: int) -> None:
    STATE["payments"].charge(customer_id=1, payment_method_id=2, amount_cents=500,
                             metadata={"order_id": order_id}, idempotency_key=f"charge-{order_id}")
    ship.enqueue(order_id)


@job(retry=3)
def ship(order_id: int) -> None:
    STATE["orders"][order_id][1] = _now()


def _now() -> float:
    return STATE["clock"].time()


@job(retry=False)
def sweep() -> None:
    for order_id, (_, done) in STATE["orders"].items():
        if done is None:
            ship.enqueue(order_id)


def outcomes(world: Any) -> dict[int, tuple[float, float | None]]:
    return {order_id: (started, done) for order_id, (started, done) in STATE["orders"].items()}


def _configure(world: Any) -> None:
    configure(world)
    STATE["clock"] = world.clock


FORGETFUL = Scenario(name="forgetful", job=charge, jobs=(ship,), setup=setup, configure=_configure,
                     invariants=[completed_within(3600, outcomes, what="order")], targets=[__name__],
                     broker_loss=True)


def test_the_step_round_trips_through_json_and_refuses_bad_forms():
    plan = (BrokerLoss(2),)
    assert plan_to_json(plan) == '[{"attempt":2,"fault":"forget","point":{"kind":"broker"}}]'
    assert as_plan(plan_to_json(plan)) == plan
    with pytest.raises(ConfigurationError, match="at least 1"):
        as_plan('[{"attempt":0,"fault":"forget","point":{"kind":"broker"}}]')
    with pytest.raises(ConfigurationError, match="a broker step's fault is 'forget'"):
        as_plan('[{"attempt":1,"fault":"crash","point":{"kind":"broker"}}]')


@pytest.mark.parametrize("engine", ["sim", "dramatiq", "rq", "celery"])
def test_a_lost_follow_up_is_caught_by_the_monitor_with_its_story(engine):
    report = explore(FORGETFUL, engine=engine)
    [lost] = report.found(fault="forget")
    assert lost.story == ("attempt 1 of charge ran to the end; then the broker forgot everything it held, "
                          "1 job (ship), and no error was raised")
    assert lost.violations[-1] == ("order 7 never completed: when the world went quiet, no job was left to "
                                   "finish it; nothing was reported to the error catcher")


def test_without_the_option_no_plan_loses_the_broker():
    from dataclasses import replace

    assert not explore(replace(FORGETFUL, broker_loss=False)).found(fault="forget")


def test_a_loss_when_the_broker_holds_nothing_says_so():
    explorer = Explorer(FORGETFUL)
    try:
        result = explorer.replay([BrokerLoss(2)])
        assert result.violations == [] and result.lost == [(2, [])]
    finally:
        explorer.close()


def test_a_periodic_sweeper_outside_the_broker_completes_the_lost_order():
    from dataclasses import replace

    swept = replace(FORGETFUL, name="swept", periodic=((sweep, 1800.0),), periodic_for=3600.0)
    report = explore(swept)
    assert report.safe, report.to_text()


def test_the_monitor_flags_late_outcomes_and_refuses_a_bad_limit():
    class World:
        class clock:
            @staticmethod
            def time() -> float:
                return 10_000.0

        class services:
            @staticmethod
            def effects() -> list[Any]:
                return []

    late = completed_within(600, lambda world: {1: (0.0, 7200.0), 2: (0.0, 300.0)}, what="order")
    assert late(World) == ["order 1 completed 2.0 h after it started (the limit is 10 min)"]
    for bad in (0, -1, True, "1h"):
        with pytest.raises(ValueError, match="positive number of seconds"):
            completed_within(bad, lambda world: {})  # type: ignore[arg-type]


def test_periodic_entries_are_checked():
    with pytest.raises(ConfigurationError, match=r"periodic takes \(job, every seconds\) pairs"):
        Scenario(name="bad", job=charge, periodic=((sweep, 0),))
