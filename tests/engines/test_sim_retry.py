"""The reference engine's retry rules against Sidekiq's: delays and jitter, record fields, crashes."""

from __future__ import annotations

import random

import pytest
from sim_test_helpers import Attempts, Calls, engine_with, kind_names, kinds

from harness import ConfigurationError, InjectedCrash, job
from harness.clock import EPOCH
from harness.engines import get_engine
from harness.engines.base import EventKind
from harness.engines.sim import MAX_ERROR_MESSAGE, SimEngine, default_retry_delay


@job
def always_fails(n: int) -> None:
    raise ValueError(f"order {n} is broken")


def test_get_engine_builds_the_reference_engine() -> None:
    engine = get_engine("sim", seed=3)
    assert isinstance(engine, SimEngine)
    assert engine.name == "sim" and engine.seed == 3


@pytest.mark.parametrize("count", range(25))
def test_default_delay_stays_within_sidekiqs_bounds(count: int) -> None:
    rng = random.Random(count)
    low = count**4 + 15
    draws = [default_retry_delay(count, rng) for _ in range(300)]
    assert all(low <= d < low + 10 * (count + 1) for d in draws)
    assert all(isinstance(d, int) for d in draws)


def test_jitter_is_rand_of_ten_times_count_plus_one_not_a_multiple() -> None:
    # rand(10 * (count + 1)) reaches every integer below the bound; rand(10) * (count + 1) would not.
    rng = random.Random(0)
    jitters = {default_retry_delay(1, rng) - 16 for _ in range(2000)}
    assert jitters == set(range(20))


def test_the_engine_draws_every_jitter_below_the_bound() -> None:
    engine = SimEngine(seed=2)
    for n in range(300):
        engine.enqueue(always_fails.with_options(retry=2), n)
    engine.run_until_quiet()
    scheduled = kinds(engine, EventKind.RETRY_SCHEDULED)
    second = [e.detail["delay"] - 16 for e in scheduled if e.detail["retry_count"] == 1]
    assert len(second) == 300 and set(second) == set(range(20))


def test_a_job_that_always_fails_dies_after_25_retries_about_20_days_later() -> None:
    calls = Calls()
    engine = engine_with(calls, seed=11)
    engine.enqueue(always_fails, 1)
    ran = engine.run_until_quiet()

    assert ran == 26
    scheduled = kinds(engine, EventKind.RETRY_SCHEDULED)
    assert [e.detail["retry_count"] for e in scheduled] == list(range(25))
    for event in scheduled:
        count = event.detail["retry_count"]
        assert count**4 + 15 <= event.detail["delay"] < count**4 + 15 + 10 * (count + 1)
        assert event.detail["run_at"] == event.time + event.detail["delay"]
    low = sum(c**4 + 15 for c in range(25))
    high = low + sum(10 * (c + 1) - 1 for c in range(25))
    elapsed = engine.clock.time() - EPOCH
    assert elapsed == sum(e.detail["delay"] for e in scheduled)
    assert low <= elapsed <= high
    assert low > 20 * 86400 and high < 21 * 86400
    [dead] = engine.dead()
    assert dead.retry_count == 25 and dead.error_class == "ValueError"
    assert engine.stats.processed == 26 and engine.stats.failed == 26
    assert len(calls.named("error")) == 26 and calls.named("death") == ["ValueError"]


def test_record_fields_follow_sidekiqs_numbering() -> None:
    engine = SimEngine()
    engine.enqueue(always_fails.with_options(retry=3), 5)
    engine.step()
    [record] = engine.retries()
    first_failure = engine.clock.time()
    assert (record.retry_count, record.failed_at, record.retried_at) == (0, first_failure, None)
    assert (record.error_class, record.error_message) == ("ValueError", "order 5 is broken")
    assert record.attempt == 2

    engine.advance_to_next()
    engine.step()
    [record] = engine.retries()
    assert record.retry_count == 1
    assert record.failed_at == first_failure and record.retried_at == engine.clock.time() > first_failure


def test_error_message_is_cut_at_ten_thousand_characters() -> None:
    @job(retry=1)
    def shouts() -> None:
        raise RuntimeError("x" * 50_000)

    engine = SimEngine()
    engine.enqueue(shouts)
    engine.step()
    [record] = engine.retries()
    assert record.error_message is not None and len(record.error_message) == MAX_ERROR_MESSAGE


def test_error_handlers_see_the_payload_as_it_was_before_the_failure() -> None:
    calls = Calls()
    engine = engine_with(calls)
    engine.enqueue(always_fails.with_options(retry=2), 1)
    engine.run_until_quiet()
    assert calls.named("error") == [
        ("ValueError", "Job raised exception", None),
        ("ValueError", "Job raised exception", 0),
        ("ValueError", "Job raised exception", 1),
    ]


def test_observers_see_each_attempt_number_and_its_outcome() -> None:
    outcomes = iter([ValueError("first"), InjectedCrash("line 3"), None])

    @job(retry=5)
    def flaky() -> None:
        exc = next(outcomes)
        if exc is not None:
            raise exc

    observer = Attempts()
    engine = SimEngine()
    engine.hooks.observers.append(observer)
    engine.enqueue(flaky)
    engine.run_until_quiet()
    assert observer.calls == [
        ("started", 1, None),
        ("finished", 1, "ValueError"),
        ("started", 2, None),
        ("finished", 2, "InjectedCrash"),
        ("started", 3, None),
        ("finished", 3, None),
    ]
    assert [e.attempt for e in kinds(engine, EventKind.STARTED)] == [1, 2, 3]


def test_an_injected_crash_is_recovered_by_super_fetch_with_no_retry_and_no_handler() -> None:
    crashes = [InjectedCrash("after charge")]
    done: list[int] = []

    @job
    def charge(n: int) -> None:
        if crashes:
            raise crashes.pop()
        done.append(n)

    calls = Calls()
    observer = Attempts()
    engine = engine_with(calls)
    engine.hooks.observers.append(observer)
    start = engine.clock.time()
    engine.enqueue(charge, 4)
    engine.run_until_quiet()
    assert done == [4]
    assert kind_names(engine) == ["enqueued", "started", "crashed", "recovered", "started", "succeeded"]
    [recovered] = kinds(engine, EventKind.RECOVERED)
    assert recovered.time == start + 60  # the dead process's heartbeat expired
    # Run 2 is told apart from run 1 although no retry was counted.
    assert [c[:2] for c in observer.calls] == [("started", 1), ("finished", 1), ("started", 2), ("finished", 2)]
    assert [e.attempt for e in kinds(engine, EventKind.STARTED)] == [1, 2]
    assert calls.log == [] and engine.retries() == [] and engine.dead() == []
    assert engine.stats.processed == 2 and engine.stats.failed == 1


def test_a_crash_after_a_retry_keeps_the_retry_count() -> None:
    outcomes = iter([ValueError("first"), InjectedCrash("line 3"), None])
    seen: list[int | None] = []

    @job(retry=5)
    def flaky() -> None:
        exc = next(outcomes)
        if exc is not None:
            raise exc

    engine = SimEngine()
    engine.hooks.server_middleware.append(lambda record, call: (seen.append(record.retry_count), call())[1])
    engine.enqueue(flaky)
    engine.run_until_quiet()
    assert seen == [None, 0, 0]  # the redelivered run has the payload the crashed one had


def test_a_job_that_crashes_every_time_runs_again_after_each_crash() -> None:
    # super_fetch recovers a poison pill as often as it kills the process: bound the run by time.
    runs: list[float] = []

    @job(retry=2)
    def crashes() -> None:
        runs.append(engine.clock.time())
        raise InjectedCrash("always")

    calls = Calls()
    engine = engine_with(calls, recover_after=30)
    engine.enqueue(crashes)
    engine.run_until_quiet(max_time=300)
    assert [t - runs[0] for t in runs] == [30.0 * n for n in range(11)]
    assert calls.log == [] and engine.dead() == [] and engine.retries() == []


def test_basic_fetch_loses_the_job_of_a_crashed_worker() -> None:
    done: list[int] = []

    @job(retry=3)
    def charge(n: int) -> None:
        if not done:
            done.append(0)
            raise InjectedCrash("after charge")
        done.append(n)

    calls = Calls()
    engine = engine_with(calls, fetch="basic")
    engine.enqueue(charge, 4)
    engine.run_until_quiet()
    assert done == [0]
    assert kind_names(engine) == ["enqueued", "started", "crashed", "lost"]
    assert calls.log == [] and engine.queued() == [] and engine.retries() == [] and engine.dead() == []


def test_bad_fetch_settings_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="fetch must be 'super'"):
        SimEngine(fetch="reliable")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="recover_after"):
        SimEngine(recover_after=-1)


@pytest.mark.parametrize("escape", [KeyboardInterrupt, SystemExit])
def test_keyboard_interrupt_and_system_exit_propagate(escape: type[BaseException]) -> None:
    @job
    def stops() -> None:
        raise escape()

    engine = SimEngine()
    engine.enqueue(stops)
    with pytest.raises(escape):
        engine.run_until_quiet()
    assert engine.retries() == [] and engine.dead() == []


def test_a_broken_error_handler_does_not_change_routing() -> None:
    def broken(exc: BaseException, context: dict[str, object]) -> None:
        raise RuntimeError("reporter down")

    engine = SimEngine()
    engine.hooks.error_handlers.append(broken)
    engine.enqueue(always_fails.with_options(retry=1), 1)
    engine.run_until_quiet()
    assert len(engine.dead()) == 1
    assert len(kinds(engine, EventKind.ERROR_HANDLER_CALLED)) == 2
