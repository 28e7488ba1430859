"""Speed of each backend's deterministic mode: a job with 5 retries, three hours apart, to the dead set.

The same harness job runs on the reference engine and on Dramatiq, RQ and Celery (each driven by its
own retry machinery on a virtual clock), side by side in one run.

    python -m bench --only bench_engines
"""

from __future__ import annotations

import logging
import statistics
import time

from harness import job
from harness.engines import get_engine
from harness.engines.base import Engine

NAMES = ("sim", "dramatiq", "rq", "celery")
HOURS_APART = 3


@job(name="bench_engines.always_fails", retry=5, retry_in=lambda count, exc, record: HOURS_APART * 3600)
def always_fails(order: int) -> None:
    raise ValueError(f"order {order} cannot be completed")


def _dead_after_5_retries_ms(engine: Engine) -> float:
    engine.reset()
    engine.clock.reset()
    start = time.perf_counter()
    with engine.activate():
        engine.enqueue(always_fails, 1)
        engine.run_until_quiet()
    elapsed = time.perf_counter() - start
    if len(engine.dead()) != 1 or engine.stats.processed != 6:
        raise AssertionError(f"{engine.name}: expected one dead job after 6 attempts, got {engine.stats}")
    return elapsed * 1000


def run(quick: bool) -> dict[str, dict]:
    runs = 5 if quick else 21
    figures: dict[str, dict] = {}
    # The engines log every failed attempt with a traceback; that is their cost, not the harness's,
    # but printing it to a terminal would dominate the figure.
    logging.disable(logging.ERROR)
    try:
        for name in NAMES:
            engine = get_engine(name, seed=0)
            engine.hooks.error_handlers.append(lambda exc, context: None)
            engine.hooks.death_handlers.append(lambda record, exc: None)
            _dead_after_5_retries_ms(engine)  # warm up
            times = [_dead_after_5_retries_ms(engine) for _ in range(runs)]
            hours = (engine.clock.time() - engine.dead()[0].failed_at) / 3600  # type: ignore[operator]
            engine.close()
            figures[f"engines.{name}.dead_after_5_retries_ms"] = {
                "value": statistics.median(times),
                "unit": "ms",
                "note": f"median of {runs}: 6 attempts over {hours:.1f} virtual hours, handlers on",
            }
    finally:
        logging.disable(logging.NOTSET)
    return figures
