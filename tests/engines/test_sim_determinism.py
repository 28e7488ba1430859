"""One seed, one event log, byte for byte; `reset()` gives a fresh engine's behaviour back."""

from __future__ import annotations

import json
import re
from typing import Any

from harness import InjectedCrash, job
from harness.engines.base import EventKind
from harness.engines.sim import SimEngine

outcomes: list[BaseException | None] = []


@job(queue="high", retry=4)
def flaky(order: int) -> None:
    exc = outcomes.pop(0) if outcomes else None
    if exc is not None:
        raise exc
    follow_up.enqueue_in(90, order)


@job(queue="low", retry=2)
def follow_up(order: int) -> None:
    if order % 2:
        raise ValueError(f"order {order} is odd")


def scenario(engine: SimEngine) -> str:
    outcomes[:] = [ValueError("a"), InjectedCrash("b"), None, ValueError("c"), None, None]
    engine.hooks.error_handlers[:] = [lambda exc, context: None]
    engine.hooks.death_handlers[:] = [lambda record, exc: None]
    for order in range(4):
        engine.enqueue(flaky, order)
    engine.run_until_quiet()
    return engine.to_json()


def build(seed: int) -> SimEngine:
    return SimEngine(seed=seed, queues={"high": 2, "low": 1})


def test_the_same_seed_gives_the_same_bytes() -> None:
    first = scenario(build(7))
    second = scenario(build(7))
    assert first == second
    assert '"kind":"dead"' in first and '"kind":"retry_scheduled"' in first


def test_a_different_seed_gives_a_different_log() -> None:
    one, other = json.loads(scenario(build(7))), json.loads(scenario(build(8)))
    assert one["events"] != other["events"]
    def delays(log: dict[str, list[dict[str, Any]]]) -> list[int]:
        return [e["detail"]["delay"] for e in log["events"] if e["kind"] == "retry_scheduled"]

    assert delays(one) != delays(other)


def test_reset_reproduces_a_fresh_engine_run() -> None:
    engine = build(3)
    fresh = scenario(engine)
    engine.reset()
    engine.clock.reset()
    assert engine.events == [] and engine.queued() == [] and engine.dead() == []
    assert engine.stats.processed == 0
    assert scenario(engine) == fresh


def test_job_ids_are_24_hex_digits_drawn_from_the_seed() -> None:
    ids = [SimEngine(seed=seed).enqueue(follow_up, 2) for seed in (1, 1, 2)]
    assert all(re.fullmatch(r"[0-9a-f]{24}", str(i)) for i in ids)
    assert ids[0] == ids[1] != ids[2]


def test_event_log_is_json_with_virtual_times() -> None:
    engine = build(1)
    scenario(engine)
    events = json.loads(engine.events_json())
    assert [e["kind"] for e in events] == [e.kind.value for e in engine.events]
    times = [e["time"] for e in events]
    assert times == sorted(times)
    assert {e.kind for e in engine.events} >= {EventKind.ENQUEUED, EventKind.STARTED, EventKind.SUCCEEDED}
