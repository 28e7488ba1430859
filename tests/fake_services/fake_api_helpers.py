"""Shared request bodies and the `Api` shape for the fake services' tests (imported by bare name)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from fake_services import FakeServices


@dataclass
class Api:
    """The services and an httpx client that reaches them in one of the two modes."""

    mode: str
    services: FakeServices
    http: httpx.Client
    base_url: str


CHARGE = {"customer_id": 1, "payment_method_id": "pm_1", "amount_cents": 1500,
          "metadata": {"order_id": 7}}
EMAIL = {"to": "pat@example.com", "template_id": "order-confirmation", "template_data": {"order_id": 7}}
FULFILL = {"customer_id": 1, "address": "1 Main St", "product_id": 3, "quantity": 2,
           "metadata": {"order_id": 7}}
NOTIFY = {"exception_class": "ValueError", "exception_message": "boom"}


def csrf(http: httpx.Client, page: str = "/") -> str:
    """The form token a page carries, read from it as a browser would."""
    import re

    found = re.search(r'name="csrf" value="([^"]+)"', http.get(page).text)
    assert found, f"no form token on {page}"
    return found.group(1)
