"""Deeper plans than exhaustive search reaches, generated and shrunk by Hypothesis."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from hypothesis import HealthCheck, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from harness.strategies import fault_plans

if TYPE_CHECKING:
    from harness.explore.runner import RunResult, RunSession

__all__ = ["search_deeper"]


def _strategy(session: RunSession, baseline: RunResult) -> st.SearchStrategy[tuple] | None:
    """The plans' strategy, built once per session: Hypothesis keeps what it learns about a strategy (its
    repr, its validation) for the process's life, so a new one per search grew memory run after run."""
    cached = session.cache.get("search_strategy", False)
    if cached is not False:
        return cached
    lines = sorted({p for e in baseline.executions for p in e.lines})
    calls = sorted({c for e in baseline.executions for c in e.calls})
    strategy = None
    if lines or calls:
        attempts = st.integers(min_value=1, max_value=len(baseline.executions) + 3)
        strategy = fault_plans(lines=lines, calls=calls, attempts=attempts, max_size=3)
    session.cache["search_strategy"] = strategy
    return strategy


def search_deeper(
    session: RunSession, baseline: RunResult, *, examples: int, seed: int, tell: Callable[[], None] | None = None
) -> tuple[RunResult | None, int]:
    """Generate up to `examples` plans of up to three faults; return the run of the smallest plan that
    violates an invariant (None when none did) and how many plans were run, shrinking included."""
    strategy = _strategy(session, baseline)
    if strategy is None:
        return None, 0

    runs = 0

    def violates(plan: tuple) -> bool:
        nonlocal runs
        runs += 1
        if tell is not None:
            tell()
        return bool(session.run(plan).violations)

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
    return session.run(smallest), runs + 1
