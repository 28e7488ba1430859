"""Exploration throughput: plans per second for exhaustive depth-1 exploration of a three-call job with
in-process fake services on the `sim` engine (every line crashed, every call faulted, redelivery)."""

from __future__ import annotations

import statistics
import sys
import time

from bench._explore_job import THREE_CALLS
from harness.explore import Explorer


def run(quick: bool) -> dict[str, dict]:
    rounds = 3 if quick else 15
    explorer = Explorer(THREE_CALLS, seed=0)
    try:
        explorer.baseline()
        rates, plans = [], 0
        for _ in range(rounds):
            started = time.perf_counter()
            report = explorer.explore()
            rates.append(report.plans_run / (time.perf_counter() - started))
            plans = report.plans_run
        backend = explorer.tracer.backend
    finally:
        explorer.close()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return {
        "explore.plans_per_s": {
            "value": statistics.median(rates),
            "unit": "plans/s",
            "note": f"median of {rounds}: {plans} plans per exploration, sim, {backend} tracer, Python {version}",
        }
    }
