"""The fake fulfillment service: accepts a shipping request, replays by idempotency key.

A request whose `metadata.idempotency_key` was seen before gets the stored answer (202) and ships
nothing new; a blank address is rejected with the seed's 422 body and not recorded.
"""

from __future__ import annotations

import json
from typing import Any

from fake_services.messages import Call, json_reply
from fake_services.service import (
    BadInput,
    Outcome,
    Route,
    Service,
    blank,
    ident,
    mapping,
    obj,
    scalar_keys,
    whole,
)

__all__ = ["Fulfillment"]


class Fulfillment(Service):
    name = "fulfillment"
    title = "Fulfillment"
    id_prefix = "fr"
    collection = "requests"
    columns = ("customer_id", "address", "product_id", "quantity", "request_id", "metadata")

    def __init__(self, seed: int | None, clock: Any) -> None:
        super().__init__(seed, clock)
        self._by_key: dict[str, dict[str, Any]] = {}
        self.routes[("PUT", "request")] = Route("request", self._request, 202, keyed=True)
        self.routes[("GET", "status")] = Route("status", self._num_requests, 200)

    def clear(self) -> int:
        with self.lock:
            self._by_key.clear()
            return super().clear()

    def keys(self, operation: str, call: Call, body: Any) -> dict[str, Any]:
        if operation != "request" or not isinstance(body, dict):
            return {}
        keys = scalar_keys(body.get("metadata"), "order_id")
        keys.update(scalar_keys(body, "customer_id", "product_id", "quantity"))
        return keys

    def _num_requests(self, call: Call, body: Any) -> Outcome:
        return Outcome(json_reply(200, {"num_requests": len(self._records)}), False)

    def _request(self, call: Call, body: Any) -> Outcome:
        body = obj(body)
        metadata = mapping(body, "metadata")
        key = metadata.get("idempotency_key")
        lookup = None if key is None else json.dumps(key, sort_keys=True)
        if lookup is not None and lookup in self._by_key:
            return Outcome(json_reply(202, self._by_key[lookup]), False)
        if blank(body.get("address")):
            return Outcome(json_reply(422, {"status": "rejected", "error": "Missing address"}), False)
        if not isinstance(body["address"], str | dict):
            raise BadInput(f"address must be a string or an object, got {type(body['address']).__name__}")
        record = {
            "customer_id": ident(body, "customer_id"),
            "address": body["address"],
            "product_id": ident(body, "product_id"),
            "quantity": whole(body, "quantity", minimum=1),
            "metadata": metadata,
            "time": self.clock.time(),
        }
        response = {"status": "accepted", "request_id": self.new_id()}
        self._records.append({**record, **response})
        if lookup is not None:
            self._by_key[lookup] = response
        return Outcome(json_reply(202, response), True)
