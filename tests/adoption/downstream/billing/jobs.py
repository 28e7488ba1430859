"""The billing jobs. `charge_then_email` is the first version: when the receipt fails after the charge
went through, the retry charges again. `charge_then_email_once` is its fix: an idempotency key on the
charge, and a look for the receipt before sending it."""

from __future__ import annotations

import httpx

from billing.gateway import Gateway
from harness import job

CUSTOMER = {"id": "cus_42", "email": "ada@example.com"}
PRICES = {7: 2500}

_gateway: Gateway | None = None


def connect(http: httpx.Client) -> None:
    """Point the jobs at the providers behind `http` (a client with a base URL)."""
    global _gateway
    _gateway = Gateway(http)


def gateway() -> Gateway:
    if _gateway is None:
        raise RuntimeError("billing.jobs.connect(http) was never called")
    return _gateway


@job(retry=3)
def charge_then_email(order_id: int) -> None:
    charge_id = gateway().charge(order_id=order_id, customer_id=CUSTOMER["id"], amount_cents=PRICES[order_id])
    gateway().send_receipt(to=CUSTOMER["email"], order_id=order_id, charge_id=charge_id)


@job(retry=3)
def charge_then_email_once(order_id: int) -> None:
    charge_id = gateway().charge(
        order_id=order_id,
        customer_id=CUSTOMER["id"],
        amount_cents=PRICES[order_id],
        idempotency_key=f"charge-order-{order_id}",
    )
    sent = gateway().receipts(to=CUSTOMER["email"])
    if not any(receipt["template_data"].get("order_id") == order_id for receipt in sent):
        gateway().send_receipt(to=CUSTOMER["email"], order_id=order_id, charge_id=charge_id)
