"""Small jobs for the explorer's own tests: a planted double charge and its idempotent twin.

Each job charges a customer, then sends a confirmation email. The naive one sends no idempotency key, so
any failure after the charge makes the retry charge again.
"""

from __future__ import annotations

from typing import Any

from fake_services.clients import EmailClient, PaymentsClient
from harness import job

STATE: dict[str, Any] = {}


def configure(world: Any) -> None:
    STATE["payments"] = PaymentsClient(world.base_url, http=world.http)
    STATE["email"] = EmailClient(world.base_url, http=world.http)


def setup(world: Any) -> list[Any]:
    return [7]


@job(retry=5)
def charge_then_email(order_id: int) -> None:
    payments = STATE["payments"]
    result = payments.charge(customer_id=1, payment_method_id=2, amount_cents=1500, metadata={"order_id": order_id})
    receipt = {"order_id": order_id, "charge_id": result.charge_id}
    STATE["email"].send(to="pat@example.com", template_id="receipt", template_data=receipt)


@job(retry=5)
def charge_then_email_safely(order_id: int) -> None:
    key = f"charge-order-{order_id}"
    result = STATE["payments"].charge(
        customer_id=1,
        payment_method_id=2,
        amount_cents=1500,
        metadata={"order_id": order_id},
        idempotency_key=key,
    )
    email = STATE["email"]
    sent = email.search(email="pat@example.com", template_id="receipt")
    if not any(e.get("template_data", {}).get("order_id") == order_id for e in sent):
        email.send(
            to="pat@example.com",
            template_id="receipt",
            template_data={"order_id": order_id, "charge_id": result.charge_id},
        )


def _scenario(name: str, target: Any) -> Any:
    from harness.explore import Scenario

    return Scenario(name=name, job=target, setup=setup, configure=configure, targets=[__name__])


NAIVE = _scenario("planted.naive", charge_then_email)
SAFE = _scenario("planted.safe", charge_then_email_safely)
