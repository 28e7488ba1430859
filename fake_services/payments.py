"""The fake payments service: charges a customer, declines 9999 cents, replays by idempotency key.

As in the seed, an earlier *successful* charge with the same `metadata.idempotency_key` is answered
again (201, same `charge_id`) and does nothing new; declines are recorded but never replayed.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from fake_services.idempotency import parse_key
from fake_services.messages import Call, json_reply
from fake_services.service import Outcome, Route, Service, ident, mapping, obj, scalar_keys, whole

__all__ = ["DECLINED_AMOUNT", "Payments"]

#: The amount the seed declines for "Insufficient funds".
DECLINED_AMOUNT = 9999


class Payments(Service):
    name = "payments"
    title = "Payments"
    id_prefix = "ch"
    collection = "charges"
    columns = ("customer_id", "amount_cents", "status", "charge_id", "metadata")

    def __init__(self, seed: int | None, clock: Any) -> None:
        super().__init__(seed, clock)
        self._by_key: dict[str, dict[str, Any]] = {}
        self.routes[("POST", "charge")] = Route("charge", self._charge, 201, keyed=True)

    def clear(self) -> int:
        with self.lock:
            self._by_key.clear()
            return super().clear()

    def keys(self, operation: str, call: Call, body: Any) -> dict[str, Any]:
        if operation != "charge" or not isinstance(body, dict):
            return {}
        keys = scalar_keys(body.get("metadata"), "order_id")
        keys.update(scalar_keys(body, "customer_id", "amount_cents"))
        keys.update(scalar_keys(body.get("metadata"), "idempotency_key"))
        header = call.headers.get("idempotency-key")
        if header is not None and "idempotency_key" not in keys:
            # A malformed key is answered with a 400; there is then no key to journal.
            with contextlib.suppress(ValueError):
                keys["idempotency_key"] = parse_key(header)
        return keys

    def _charge(self, call: Call, body: Any) -> Outcome:
        body = obj(body)
        metadata = mapping(body, "metadata")
        key = metadata.get("idempotency_key")
        # The seed compares keys as JSON values, so 44 and "44" are different keys.
        lookup = None if key is None else json.dumps(key, sort_keys=True)
        if lookup is not None and lookup in self._by_key:
            return Outcome(json_reply(201, self._by_key[lookup]), False)
        customer_id = ident(body, "customer_id")
        payment_method_id = ident(body, "payment_method_id")
        amount = whole(body, "amount_cents", minimum=0)
        record = {
            "customer_id": customer_id,
            "payment_method_id": payment_method_id,
            "amount_cents": amount,
            "metadata": metadata,
            "time": self.clock.time(),
        }
        if amount == DECLINED_AMOUNT:
            response: dict[str, Any] = {"status": "declined", "explanation": "Insufficient funds"}
            self._records.append({**record, **response, "charge_id": None})
            return Outcome(json_reply(200, response), True)
        response = {"status": "success", "charge_id": self.new_id()}
        self._records.append({**record, **response})
        if lookup is not None:
            self._by_key[lookup] = response
        return Outcome(json_reply(201, response), True)
