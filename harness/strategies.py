"""Hypothesis strategies for fault plans, in Hypothesis' own style: plural names, keyword-only bounds,
strategies accepted where values vary, `InvalidArgument` for bad arguments."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from harness.injection import plans
from harness.injection.lines import LinePoint
from harness.injection.plans import CallPoint, FaultStep, Plan

__all__ = ["call_faults", "crash_points", "fault_plans", "fault_steps"]


def crash_points(points: Sequence[LinePoint]) -> st.SearchStrategy[LinePoint]:
    """One of the given line points (recorded from a clean run)."""
    if not points:
        raise InvalidArgument("crash_points() needs at least one line point; record a clean run first")
    return st.sampled_from(list(points))


def call_faults(calls: Sequence[tuple[CallPoint, bool]]) -> st.SearchStrategy[tuple[CallPoint, str]]:
    """A (call point with its phase, fault) pair for one of the given calls; `after`-phase faults only
    for calls that had an effect."""
    choices = [choice for call, had_effect in calls for choice in plans.call_faults(call, had_effect)]
    if not choices:
        raise InvalidArgument("call_faults() needs at least one call point; record a clean run first")
    return st.sampled_from(choices)


def fault_steps(
    *,
    lines: Sequence[LinePoint] = (),
    calls: Sequence[tuple[CallPoint, bool]] = (),
    attempts: st.SearchStrategy[int] | None = None,
) -> st.SearchStrategy[FaultStep]:
    """One fault at one attempt: a crash at a line or a service fault at a call."""
    if not lines and not calls:
        raise InvalidArgument("fault_steps() needs line points, call points or both")
    attempt_numbers = attempts if attempts is not None else st.integers(min_value=1, max_value=4)
    if not isinstance(attempt_numbers, st.SearchStrategy):
        raise InvalidArgument(f"attempts must be a strategy, not {attempt_numbers!r}")
    options: list[st.SearchStrategy[FaultStep]] = []
    if lines:
        options.append(st.builds(lambda a, p: FaultStep(a, p, "crash"), attempt_numbers, crash_points(lines)))
    if calls:
        options.append(st.builds(lambda a, pf: FaultStep(a, pf[0], pf[1]), attempt_numbers, call_faults(calls)))
    return st.one_of(options)


def fault_plans(
    *,
    lines: Sequence[LinePoint] = (),
    calls: Sequence[tuple[CallPoint, bool]] = (),
    attempts: st.SearchStrategy[int] | None = None,
    min_size: int = 1,
    max_size: int = 3,
) -> st.SearchStrategy[Plan]:
    """Plans of `min_size` to `max_size` faults, at most one per attempt, ordered by attempt.
    Shrinks towards fewer faults on earlier attempts."""
    if min_size < 0 or max_size < min_size:
        raise InvalidArgument(f"need 0 <= min_size <= max_size, got min_size={min_size}, max_size={max_size}")
    steps = fault_steps(lines=lines, calls=calls, attempts=attempts)
    return st.lists(steps, min_size=min_size, max_size=max_size, unique_by=lambda s: s.attempt).map(
        lambda found: tuple(sorted(found, key=lambda s: s.attempt))
    )
