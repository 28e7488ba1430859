"""Deeper plans than exhaustive search reaches, generated and shrunk by Hypothesis."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from hypothesis import HealthCheck, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from harness.strategies import fault_plans

if TYPE_CHECKING:
    from harness.explore.explorer import Explorer
    from harness.explore.runner import RunResult

__all__ = ["search_deeper"]


def search_deeper(
    explorer: Explorer, baseline: RunResult, *, examples: int, seed: int
) -> tuple[RunResult | None, int]:
    """Generate up to `examples` plans of up to three faults; return the run of the smallest plan that
    violates an invariant (None when none did) and how many plans were run, shrinking included."""
    lines = sorted({p for e in baseline.executions for p in e.lines})
    calls = sorted({c for e in baseline.executions for c in e.calls})
    if not lines and not calls:
        return None, 0
    attempts = st.integers(min_value=1, max_value=len(baseline.executions) + 3)
    strategy = fault_plans(lines=lines, calls=calls, attempts=attempts, max_size=3)

    runs = 0

    def violates(plan: tuple) -> bool:
        nonlocal runs
        runs += 1
        return bool(explorer._run(plan).violations)

    config = settings(
        max_examples=examples,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    try:
        smallest = find(strategy, violates, settings=config, random=random.Random(seed))
    except NoSuchExample:
        return None, runs
    return explorer._run(smallest), runs + 1
