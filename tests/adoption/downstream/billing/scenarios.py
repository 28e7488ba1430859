"""The billing jobs as harness scenarios, built with the public API only."""

from __future__ import annotations

from collections import Counter

from billing import jobs
from harness import Job, Scenario, World, exactly_once

ORDER_ID = 7


def connect_to_fakes(world: World) -> None:
    """The jobs talk to the world's fake services, in-process."""
    jobs.connect(world.http)


def one_order(world: World) -> list[int]:
    return [ORDER_ID]


def charged_once(world: World) -> list[str]:
    """Each order is charged exactly once, read from what the payments provider recorded."""
    charges: Counter[int] = Counter()
    ids: dict[int, list[str]] = {}
    for record in world.services.payments.records():
        if record.get("status") == "success":
            order = record["metadata"]["order_id"]
            charges[order] += 1
            ids.setdefault(order, []).append(record["charge_id"])
    problems = [
        f"order {order} was charged {n} times (expected 1): {', '.join(ids[order])}"
        for order, n in sorted(charges.items())
        if n != 1
    ]
    if ORDER_ID not in charges:
        problems.append(f"order {ORDER_ID} was never charged")
    return problems


def _scenario(name: str, job: Job) -> Scenario:
    return Scenario(
        name=name,
        job=job,
        setup=one_order,
        configure=connect_to_fakes,
        invariants=(charged_once, exactly_once("email", "send", "order_id", label="the receipt")),
        targets=["billing"],
        exclude=["billing.gateway"],
    )


PLANTED = _scenario("billing.charge_twice", jobs.charge_then_email)
FIXED = _scenario("billing.charge_once", jobs.charge_then_email_once)
