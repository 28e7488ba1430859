"""The job the exploration benchmark explores: three calls (charge, email, fulfillment), no idempotency."""

from __future__ import annotations

from typing import Any

from fake_services.clients import EmailClient, FulfillmentClient, PaymentsClient
from harness import job
from harness.explore import Scenario

CLIENTS: dict[str, Any] = {}


def configure(world: Any) -> None:
    CLIENTS["payments"] = PaymentsClient(world.base_url, http=world.http)
    CLIENTS["email"] = EmailClient(world.base_url, http=world.http)
    CLIENTS["fulfillment"] = FulfillmentClient(world.base_url, http=world.http)


@job(retry=3)
def complete_order(order_id: int) -> None:
    CLIENTS["payments"].charge(customer_id=1, payment_method_id=2, amount_cents=1500, metadata={"order_id": order_id})
    CLIENTS["email"].send(to="pat@example.com", template_id="receipt", template_data={"order_id": order_id})
    CLIENTS["fulfillment"].request(
        customer_id=1, address="1 Main St", product_id=3, quantity=1, metadata={"order_id": order_id}
    )


THREE_CALLS = Scenario(
    name="bench.three_calls", job=complete_order, setup=lambda world: [7], configure=configure, targets=[__name__]
)
