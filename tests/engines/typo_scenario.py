"""A scenario whose `targets` names a module that does not exist (a typo), for the CLI test of
test_harness_errors: every engine must answer it with exit 2 and the harness's message."""

from __future__ import annotations

from typing import Any

from fake_services.clients import PaymentsClient
from harness import job
from harness.explore import Scenario

STATE: dict[str, Any] = {}


def configure(world: Any) -> None:
    STATE["payments"] = PaymentsClient(world.base_url, http=world.http)


@job(retry=3)
def charge(order_id: int) -> None:
    STATE["payments"].charge(customer_id=1, payment_method_id=2, amount_cents=900, metadata={"order_id": order_id})


TYPO = Scenario(
    name="typo.targets",
    job=charge,
    setup=lambda world: [7],
    configure=configure,
    targets=["typo_scenaro_module"],
)
