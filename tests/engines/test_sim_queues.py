"""Pushing and fetching on the reference engine: queue order, schedules, chains, middleware, arguments."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from harness import ConfigurationError, JobArgumentError, job
from harness.engines.base import EventKind, JobRecord
from harness.engines.sim import SimEngine

ran: list[str] = []


@job(queue="high")
def high(tag: str) -> None:
    ran.append(tag)


@job(queue="default")
def default(tag: str) -> None:
    ran.append(tag)


@job(queue="low")
def low(tag: str) -> None:
    ran.append(tag)


@pytest.fixture(autouse=True)
def _clear_ran() -> None:
    ran.clear()


def test_a_list_of_queues_is_strict_priority_and_each_queue_is_fifo() -> None:
    engine = SimEngine(queues=["high", "default", "low"])
    for one, tag in [(low, "l1"), (default, "d1"), (high, "h1"), (low, "l2"), (high, "h2")]:
        engine.enqueue(one, tag)
    assert engine.queue_mode == "strict"
    assert [r.args[0] for r in engine.queued()] == ["h1", "h2", "d1", "l1", "l2"]
    engine.run_until_quiet()
    assert ran == ["h1", "h2", "d1", "l1", "l2"]


def test_weighted_queues_are_picked_in_proportion_to_their_weights() -> None:
    engine = SimEngine(queues={"high": 3, "low": 1}, seed=5)
    for i in range(400):
        engine.enqueue(high, f"h{i}")
        engine.enqueue(low, f"l{i}")
    for _ in range(200):
        engine.step()
    share = sum(tag.startswith("h") for tag in ran) / len(ran)
    assert engine.queue_mode == "weighted"
    assert 0.65 < share < 0.85


def weighted_order(seed: int) -> list[str]:
    ran.clear()
    engine = SimEngine(queues={"high": 1, "low": 1}, seed=seed)
    for i in range(20):
        engine.enqueue(high, f"h{i}")
        engine.enqueue(low, f"l{i}")
    engine.run_until_quiet()
    return list(ran)


def test_weighted_picks_come_from_the_seed() -> None:
    assert weighted_order(1) == weighted_order(1)
    assert weighted_order(1) != weighted_order(2)
    assert Counter(t[0] for t in weighted_order(3)) == {"h": 20, "l": 20}


def test_all_zero_weights_or_strict_true_mean_strict_order() -> None:
    strict = [SimEngine(queues={"low": 0, "high": 0}), SimEngine(queues={"low": 5, "high": 1}, strict=True)]
    for engine in strict:
        ran.clear()
        engine.enqueue(high, "h")
        engine.enqueue(low, "l")
        engine.run_until_quiet()
        assert ran == ["l", "h"]


def test_jobs_on_unconfigured_queues_run_after_the_configured_ones_in_name_order() -> None:
    engine = SimEngine(queues=["default"])
    engine.enqueue(low, "l")
    engine.enqueue(high, "h")
    engine.enqueue(default, "d")
    engine.run_until_quiet()
    assert ran == ["d", "h", "l"]


def test_unknown_queues_can_be_refused_with_a_clear_error() -> None:
    engine = SimEngine(queues=["default"], unknown_queues="refuse")
    with pytest.raises(ConfigurationError, match=r"queue 'high'.*add it to queues="):
        engine.enqueue(high, "h")
    assert engine.queued() == [] and engine.events == []


@pytest.mark.parametrize("queues", [[], "default", {"a": -1}, {"a": 1.5}])
def test_bad_queue_configurations_are_refused(queues: Any) -> None:
    with pytest.raises(ConfigurationError):
        SimEngine(queues=queues)


def test_delay_and_at_schedule_jobs_on_the_clock() -> None:
    engine = SimEngine()
    start = engine.clock.time()
    later = engine.enqueue(default, "in-60", delay=60)
    engine.enqueue(default, "at-30", at=start + 30)
    engine.enqueue(default, "past", at=start - 5)
    assert [r.args[0] for r in engine.scheduled()] == ["at-30", "in-60"]
    assert [r.args[0] for r in engine.queued()] == ["past"]
    assert engine.next_due() == start + 30
    engine.run_until_quiet()
    assert ran == ["past", "at-30", "in-60"]
    [started] = [e for e in engine.events if e.kind is EventKind.STARTED and e.job_id == later]
    assert started.time == start + 60
    with pytest.raises(ConfigurationError, match="not both"):
        engine.enqueue(default, "x", delay=1, at=start)


def test_max_time_leaves_later_jobs_scheduled() -> None:
    engine = SimEngine()
    engine.enqueue(default, "soon", delay=10)
    engine.enqueue(default, "late", delay=1000)
    assert engine.run_until_quiet(max_time=100) == 1
    assert [r.args[0] for r in engine.scheduled()] == ["late"]


@job
def charge(order: int) -> None:
    ran.append(f"charge {order}")
    send_email.enqueue(order)


@job
def send_email(order: int) -> None:
    ran.append(f"email {order}")
    fulfil.enqueue_in(3600, order)


@job
def fulfil(order: int) -> None:
    ran.append(f"fulfil {order}")


def test_chains_enqueue_through_the_current_engine_without_the_caller_activating_it() -> None:
    engine = SimEngine()
    engine.enqueue(charge, 7)
    start = engine.clock.time()
    assert engine.run_until_quiet() == 3
    assert ran == ["charge 7", "email 7", "fulfil 7"]
    assert engine.clock.time() == start + 3600


def test_enqueue_by_registered_name_and_a_clear_error_for_unknown_names() -> None:
    engine = SimEngine()
    engine.register(default)
    assert engine.enqueue(default.name, "by name")
    with pytest.raises(ConfigurationError, match="register"):
        engine.enqueue("no.such.job")


def test_arguments_that_do_not_survive_json_are_refused_with_what_to_pass() -> None:
    engine = SimEngine()
    with pytest.raises(JobArgumentError, match="pass lists instead of tuples"):
        engine.enqueue(default, (1, 2))
    with pytest.raises(JobArgumentError, match="JSON-simple"):
        engine.enqueue(default, object())
    assert engine.queued() == [] and engine.events == []


def test_client_middleware_wraps_each_push_outermost_first_and_can_stop_it() -> None:
    seen: list[str] = []

    def outer(record: JobRecord, call_next: Callable[[], str | None]) -> str | None:
        seen.append(f"outer {record.args[0]}")
        return call_next()

    def blocker(record: JobRecord, call_next: Callable[[], str | None]) -> str | None:
        seen.append(f"blocker {record.args[0]}")
        return None if record.args[0] == "spam" else call_next()

    engine = SimEngine()
    engine.hooks.client_middleware.extend([outer, blocker])
    assert engine.enqueue(default, "spam") is None
    assert engine.enqueue(default, "ham") is not None
    assert seen == ["outer spam", "blocker spam", "outer ham", "blocker ham"]
    assert [r.args[0] for r in engine.queued()] == ["ham"]
    assert [e.detail["args"] for e in engine.events if e.kind is EventKind.ENQUEUED] == [["ham"]]


def test_server_middleware_wraps_each_attempt_outermost_first() -> None:
    seen: list[str] = []

    def named(name: str) -> Callable[[JobRecord, Callable[[], Any]], Any]:
        def middleware(record: JobRecord, call_next: Callable[[], Any]) -> Any:
            seen.append(f"{name} in")
            try:
                return call_next()
            finally:
                seen.append(f"{name} out")

        return middleware

    def swallow(record: JobRecord, call_next: Callable[[], Any]) -> Any:
        try:
            return call_next()
        except ValueError:
            return None

    @job(retry=1)
    def fails_once() -> None:
        seen.append("job")
        raise ValueError("swallowed by the middleware")

    engine = SimEngine()
    engine.hooks.server_middleware.extend([named("outer"), named("inner")])
    engine.enqueue(default, "x")
    engine.run_until_quiet()
    assert seen == ["outer in", "inner in", "inner out", "outer out"]
    assert ran == ["x"]

    engine.hooks.server_middleware.append(swallow)
    engine.enqueue(fails_once)
    engine.run_until_quiet()
    assert engine.stats.failed == 0 and engine.retries() == []


def test_a_failing_server_middleware_fails_the_attempt() -> None:
    def refuses(record: JobRecord, call_next: Callable[[], Any]) -> Any:
        raise PermissionError("not now")

    engine = SimEngine()
    engine.hooks.server_middleware.append(refuses)
    engine.enqueue(default, "x")
    engine.step()
    assert ran == []
    assert [r.error_class for r in engine.retries()] == ["PermissionError"]


def test_queue_latency_is_the_age_of_the_oldest_waiting_job() -> None:
    engine = SimEngine()
    assert engine.queue_latency("default") == 0.0
    engine.enqueue(default, "a")
    engine.clock.advance(30)
    engine.enqueue(default, "b")
    engine.clock.advance(12)
    assert engine.queue_latency("default") == 42.0
    engine.step()
    assert engine.queue_latency("default") == 12.0
