"""Exploration throughput: plans per second for exhaustive depth-1 exploration of a three-call job with
in-process fake services on the `sim` engine (every line crashed, every call faulted, redelivery)."""

from __future__ import annotations

import statistics
import sys
import time

from bench._explore_job import THREE_CALLS
from fake_services.clients import PaymentsClient
from harness.explore import Explorer


def _request_us(explorer: Explorer, count: int) -> float:
    """One bare in-process request through the same client and transport, for calibration."""
    client = PaymentsClient(explorer.world.base_url, http=explorer.world.http)
    started = time.perf_counter()
    for _ in range(count):
        client.charge(customer_id=1, payment_method_id=2, amount_cents=100)
    return (time.perf_counter() - started) / count * 1e6


def run(quick: bool) -> dict[str, dict]:
    rounds = 3 if quick else 15
    explorer = Explorer(THREE_CALLS, seed=0)
    try:
        explorer.baseline()
        rates, costs, plans, requests = [], [], 0, 0
        for _ in range(rounds):
            started = time.perf_counter()
            report = explorer.explore()
            rate = report.plans_run / (time.perf_counter() - started)
            requests = len(explorer.world.services.journal)  # of the last plan, as a sample
            rates.append(rate)
            # Side by side: what one plan costs, counted in bare in-process requests measured right now.
            costs.append((1e6 / rate) / _request_us(explorer, 200))
            plans = report.plans_run
        backend = explorer.session.tracer.backend
    finally:
        explorer.close()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return {
        "explore.plan_cost_in_requests": {
            "value": statistics.median(costs),
            "unit": "requests",
            "note": f"time of one plan / time of one bare in-process charge, side by side (the last plan "
            f"made {requests} requests), Python {version}",
        },
        "explore.plans_per_s": {
            "value": statistics.median(rates),
            "unit": "plans/s",
            "note": f"median of {rounds}: {plans} plans per exploration, sim, {backend} tracer, Python {version}",
        }
    }
