"""A job-shaped function for bench_trace: about 30 executed lines, a loop, and an untraced library call
(a JSON round trip), like a background job that builds a payload and hands it to a client."""

from __future__ import annotations

import json


def job(order_id: int, items: list[int]) -> dict:
    order: dict = {"id": order_id, "lines": []}
    total = 0
    count = 0
    for price in items:
        line = {"price": price}
        total += price
        count += 1
        order["lines"].append(line)
    discount = 0
    if total > 100:
        discount = total // 10
    tax = (total - discount) * 2 // 10
    grand = total - discount + tax
    payload = json.dumps({"order": order, "grand": grand})
    echoed = json.loads(payload)
    status = "paid" if echoed["grand"] == grand else "mismatch"
    receipt = {"order_id": order_id, "status": status}
    receipt["count"] = count
    receipt["tax"] = tax
    return receipt
