"""Jobs written as production code is: module-level clients aimed at real hosts, nothing harness-made.

`test_outbound.py` explores them with the hosts mapped or routed in `configure`, and without, to see
that a request nobody routed is refused and reported, never sent.
"""

from __future__ import annotations

from typing import Any

import httpx
import requests

from harness import job
from harness.explore import Scenario

#: Made at import, long before any world exists, as production modules do.
PROVIDER = httpx.Client(base_url="https://api.pay.example", timeout=5)
SESSION = requests.Session()


@job(retry=3)
def charge_then_notify(order_id: int) -> None:
    """Charges (httpx), then tells a partner (requests): no key anywhere, so a retry repeats both."""
    PROVIDER.post("/payments/charge", json={"customer_id": 1, "payment_method_id": 2, "amount_cents": 1500,
                                            "metadata": {"order_id": order_id}}).raise_for_status()
    SESSION.post("https://partner.example/hooks/orders", json={"order_id": order_id}).raise_for_status()


@job(retry=3)
def charge_once(order_id: int) -> None:
    """The fixed twin: the charge carries a key, and the partner is told with a PUT on the order's URL."""
    PROVIDER.post("/payments/charge", json={"customer_id": 1, "payment_method_id": 2, "amount_cents": 1500,
                                            "metadata": {"order_id": order_id, "idempotency_key": order_id}}
                  ).raise_for_status()
    SESSION.put(f"https://partner.example/orders/{order_id}", json={"state": "paid"}).raise_for_status()


@job(retry=3)
def alerts_on_failure(order_id: int) -> None:
    """Charges; on a failed charge, pages someone on a host the scenario never routed."""
    try:
        PROVIDER.post("/payments/charge", json={"customer_id": 1, "payment_method_id": 2, "amount_cents": 1500,
                                                "metadata": {"order_id": order_id, "idempotency_key": order_id}}
                      ).raise_for_status()
    except httpx.HTTPError:
        requests.post("https://pager.example/alert", json={"order_id": order_id}, timeout=5)
        raise


def wired(world: Any) -> None:
    world.outbound.map("https://api.pay.example")
    world.outbound.route("POST", "https://partner.example/hooks/*", status=202, json={"ok": True},
                         name="order_hook")
    world.outbound.route("PUT", "https://partner.example/orders/*", status=200, name="order_state")


def _scenario(name: str, job: Any, configure: Any = wired) -> Scenario:
    return Scenario(name=name, job=job, setup=lambda world: [7], configure=configure,
                    targets=["outbound_jobs"])


UNSAFE = _scenario("outbound.charge_then_notify", charge_then_notify)
SAFE = _scenario("outbound.charge_once", charge_once)
UNROUTED = _scenario("outbound.unrouted", charge_then_notify, configure=lambda world: None)
ALERTS = _scenario("outbound.alerts", alerts_on_failure)
