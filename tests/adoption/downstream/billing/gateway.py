"""The shop's own HTTP client for its payment and email providers.

The jobs only ever see a `Gateway`; production builds it on the providers' base URL, tests on the
harness's fake services, so the code under test is the code that ships.
"""

from __future__ import annotations

from typing import Any

import httpx


class PaymentDeclined(Exception):
    """The provider answered, and said no."""


class Gateway:
    """Charges and receipts over one `httpx.Client` whose base URL points at the providers."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def charge(self, *, order_id: int, customer_id: str, amount_cents: int, idempotency_key: str | None = None) -> str:
        """Charge the customer for the order; returns the charge id. Any 5xx, timeout or drop raises."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        body = {
            "customer_id": customer_id,
            "payment_method_id": "pm_card",
            "amount_cents": amount_cents,
            "metadata": {"order_id": order_id},
        }
        response = self.http.post("/payments/charge", json=body, headers=headers)
        response.raise_for_status()
        if response.status_code != 201:
            raise PaymentDeclined(response.json().get("explanation", "declined"))
        return str(response.json()["charge_id"])

    def send_receipt(self, *, to: str, order_id: int, charge_id: str) -> str:
        body = {"to": to, "template_id": "receipt", "template_data": {"order_id": order_id, "charge_id": charge_id}}
        response = self.http.post("/email/send", json=body)
        response.raise_for_status()
        return str(response.json()["email_id"])

    def receipts(self, *, to: str) -> list[dict[str, Any]]:
        """Receipts already sent to this address (the provider's search)."""
        response = self.http.get("/email/emails", params={"email": to, "template_id": "receipt"})
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found
