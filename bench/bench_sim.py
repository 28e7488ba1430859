"""Speed of the reference engine: a job's whole life to the dead set (25 retries, about 20 simulated
days) in real milliseconds, and how many trivial jobs it runs per second, reset included.

    python -m bench --only bench_sim
"""

from __future__ import annotations

import statistics
import time

from harness import job
from harness.engines.sim import SimEngine


@job
def always_fails(order: int) -> None:
    raise ValueError(f"order {order} cannot be completed")


@job
def does_nothing(order: int) -> None:
    return None


def _dead_after_25_retries_ms(engine: SimEngine) -> float:
    engine.reset()
    engine.clock.reset()
    start = time.perf_counter()
    engine.enqueue(always_fails, 1)
    engine.run_until_quiet()
    elapsed = time.perf_counter() - start
    if len(engine.dead()) != 1 or engine.stats.processed != 26:
        raise AssertionError(f"expected one dead job after 26 attempts, got {engine.stats}")
    return elapsed * 1000


def _simulated_days(engine: SimEngine) -> float:
    [dead] = engine.dead()
    return (engine.clock.time() - (dead.failed_at or 0.0)) / 86400


def _jobs_per_s(engine: SimEngine, jobs: int) -> float:
    engine.reset()
    start = time.perf_counter()
    for order in range(jobs):
        engine.enqueue(does_nothing, order)
    ran = engine.run_until_quiet()
    elapsed = time.perf_counter() - start
    if ran != jobs:
        raise AssertionError(f"ran {ran} of {jobs} jobs")
    return jobs / elapsed


def run(quick: bool) -> dict[str, dict]:
    runs, jobs = (7, 5_000) if quick else (31, 50_000)
    # One engine, as the explorer uses it: handlers installed, reset between runs.
    engine = SimEngine(seed=0)
    engine.hooks.error_handlers.append(lambda exc, context: None)
    engine.hooks.death_handlers.append(lambda record, exc: None)
    _dead_after_25_retries_ms(engine)  # warm up
    dead_ms = statistics.median(_dead_after_25_retries_ms(engine) for _ in range(runs))
    days = _simulated_days(engine)
    rates = [_jobs_per_s(engine, jobs) for _ in range(3)]
    return {
        "sim.dead_after_25_retries_ms": {
            "value": dead_ms,
            "unit": "ms",
            "note": f"median of {runs} runs: 26 attempts over {days:.1f} simulated days, handlers on",
        },
        "sim.jobs_per_s": {
            "value": statistics.median(rates),
            "unit": "jobs/s",
            "note": f"enqueue + run of {jobs} trivial jobs, median of 3",
        },
    }
