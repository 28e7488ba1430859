"""The dead set is bounded and trimmed on every insert, as Sidekiq trims its `dead` sorted set."""

from __future__ import annotations

import pytest

from harness import job
from harness.engines.sim import DEFAULT_DEAD_MAX_JOBS, DEFAULT_DEAD_TIMEOUT_S, SimEngine


@job(retry=0)
def dies(n: int) -> None:
    raise ValueError(f"job {n} died")


def kill(engine: SimEngine, *numbers: int) -> None:
    for n in numbers:
        engine.enqueue(dies, n)
    engine.drain()


def dead_args(engine: SimEngine) -> list[int]:
    return [r.args[0] for r in engine.dead()]


def test_defaults_are_sidekiqs_ten_thousand_jobs_and_six_months() -> None:
    engine = SimEngine()
    assert (engine.dead_max_jobs, engine.dead_timeout_s) == (10_000, 180 * 24 * 3600)
    assert (DEFAULT_DEAD_MAX_JOBS, DEFAULT_DEAD_TIMEOUT_S) == (10_000, 15_552_000)


def test_dead_set_lists_the_most_recent_first() -> None:
    engine = SimEngine()
    kill(engine, 1, 2, 3)
    assert dead_args(engine) == [3, 2, 1]


def test_trimming_by_count_drops_the_oldest_as_zremrangebyrank_zero_minus_max_does() -> None:
    # ZREMRANGEBYRANK dead 0 -max removes ranks 0 .. len-max inclusive: max - 1 entries remain.
    engine = SimEngine(dead_max_jobs=3)
    kill(engine, 1, 2)
    assert dead_args(engine) == [2, 1]
    kill(engine, 3)
    assert dead_args(engine) == [3, 2]
    kill(engine, 4, 5)
    assert dead_args(engine) == [5, 4]


@pytest.mark.parametrize(("max_jobs", "kept"), [(1, []), (2, [9]), (100, [9, 8, 7, 6, 5, 4, 3, 2, 1])])
def test_count_bound_for_several_sizes(max_jobs: int, kept: list[int]) -> None:
    engine = SimEngine(dead_max_jobs=max_jobs)
    kill(engine, *range(1, 10))
    assert dead_args(engine) == kept


def test_trimming_by_age_drops_entries_at_or_past_the_timeout_on_the_next_insert() -> None:
    engine = SimEngine(dead_timeout_s=100)
    kill(engine, 1)
    engine.clock.advance(40)
    kill(engine, 2)
    engine.clock.advance(60)  # exactly 100 s after job 1 died
    assert dead_args(engine) == [2, 1]  # nothing is trimmed until something dies
    kill(engine, 3)
    assert dead_args(engine) == [3, 2]
    engine.clock.advance(10_000)
    assert dead_args(engine) == [3, 2]
    kill(engine, 4)
    assert dead_args(engine) == [4]


def test_age_then_count() -> None:
    engine = SimEngine(dead_timeout_s=50, dead_max_jobs=3)
    kill(engine, 1, 2)
    engine.clock.advance(60)
    kill(engine, 3)
    assert dead_args(engine) == [3]
    kill(engine, 4, 5)
    assert dead_args(engine) == [5, 4]
