"""Where a failed job goes under each retry option, and in which order the handlers run (Sidekiq's)."""

from __future__ import annotations

from typing import Any

import pytest
from sim_test_helpers import Calls, engine_with, kind_names, kinds

from harness import job
from harness.engines.base import EventKind, Job, JobRecord
from harness.engines.sim import SimEngine


def failing(**options: Any) -> Job:
    def fails(n: int) -> None:
        raise ValueError(f"broken {n}")

    return job(name=f"fails-{sorted(options.items())!r}", **options)(fails)


def exhausted_into(calls: Calls, answer: object = None) -> Any:
    def exhausted(record: JobRecord, exc: BaseException) -> object:
        calls.log.append(("exhausted", type(exc).__name__))
        return answer

    return exhausted


def run(engine: SimEngine, one: Job) -> SimEngine:
    engine.enqueue(one, 1)
    engine.run_until_quiet()
    return engine


def test_order_at_exhaustion_is_callback_dead_set_death_handlers_then_error_handlers() -> None:
    calls = Calls()
    engine = engine_with(calls)
    seen_dead: list[int] = []
    engine.hooks.death_handlers.insert(0, lambda record, exc: seen_dead.append(len(engine.dead())))
    run(engine, failing(retry=1, retries_exhausted=exhausted_into(calls)))

    assert calls.log == [
        ("error", ("ValueError", "Job raised exception", None)),
        ("exhausted", "ValueError"),
        ("death", "ValueError"),
        ("error", ("ValueError", "Job raised exception", 0)),
    ]
    assert seen_dead == [1]  # the job was already in the dead set when the death handlers ran
    last_attempt = [e.kind for e in engine.events if e.attempt == 2]
    assert last_attempt[-6:] == [
        EventKind.FAILED,
        EventKind.EXHAUSTED_CALLED,
        EventKind.DEAD,
        EventKind.DEATH_HANDLER_CALLED,
        EventKind.DEATH_HANDLER_CALLED,
        EventKind.ERROR_HANDLER_CALLED,
    ]


@pytest.mark.parametrize(("retry", "attempts"), [(True, 26), (3, 4), (1, 2)])
def test_retry_true_or_an_int_gives_that_many_retries_then_dead(retry: bool | int, attempts: int) -> None:
    engine = run(SimEngine(), failing(retry=retry))
    assert len(kinds(engine, EventKind.STARTED)) == attempts
    assert [r.retry_count for r in engine.dead()] == [attempts - 1]


def test_retry_zero_goes_straight_to_exhaustion() -> None:
    calls = Calls()
    engine = run(engine_with(calls), failing(retry=0, retries_exhausted=exhausted_into(calls)))
    assert len(kinds(engine, EventKind.STARTED)) == 1
    assert engine.retries() == [] and len(engine.dead()) == 1
    assert [name for name, _ in calls.log] == ["exhausted", "death", "error"]


def test_retry_false_keeps_no_retry_or_dead_entry_but_runs_death_then_error_handlers() -> None:
    # Sidekiq's `local` retry handler re-raises for retry: false and `global` runs the death handlers.
    calls = Calls()
    engine = run(engine_with(calls), failing(retry=False, retries_exhausted=exhausted_into(calls)))
    assert engine.retries() == [] and engine.dead() == []
    assert calls.log == [("death", "ValueError"), ("error", ("ValueError", "Job raised exception", None))]
    assert not kinds(engine, EventKind.EXHAUSTED_CALLED, EventKind.DEAD, EventKind.RETRY_SCHEDULED)


def test_dead_false_runs_the_callback_and_death_handlers_but_keeps_no_dead_entry() -> None:
    calls = Calls()
    engine = run(engine_with(calls), failing(retry=1, dead=False, retries_exhausted=exhausted_into(calls)))
    assert engine.dead() == []
    assert [name for name, _ in calls.log] == ["error", "exhausted", "death", "error"]
    [discarded] = kinds(engine, EventKind.DISCARDED)
    assert discarded.detail == {"reason": "dead=False"}


def test_retries_exhausted_answering_discard_keeps_the_job_out_of_the_dead_set() -> None:
    calls = Calls()
    engine = run(engine_with(calls), failing(retry=0, retries_exhausted=exhausted_into(calls, "discard")))
    assert engine.dead() == []
    assert [name for name, _ in calls.log] == ["exhausted", "death", "error"]


def test_a_raising_retries_exhausted_callback_is_reported_and_the_job_still_dies() -> None:
    def exhausted(record: JobRecord, exc: BaseException) -> None:
        raise KeyError("callback bug")

    calls = Calls()
    engine = run(engine_with(calls), failing(retry=0, retries_exhausted=exhausted))
    assert len(engine.dead()) == 1
    assert calls.named("error")[0][:2] == ("KeyError", "Error calling retries_exhausted")


def test_a_raising_death_handler_goes_to_the_error_handlers() -> None:
    def broken(record: JobRecord, exc: BaseException) -> None:
        raise LookupError("pager down")

    calls = Calls()
    engine = engine_with(calls)
    engine.hooks.death_handlers.insert(0, broken)
    run(engine, failing(retry=0))
    assert calls.log == [
        ("error", ("LookupError", "Error calling death handler", 0)),
        ("death", "ValueError"),
        ("error", ("ValueError", "Job raised exception", None)),
    ]


def retrying_in(answer: Any) -> Job:
    return failing(retry=3, retry_in=lambda count, exc, record: answer)


@pytest.mark.parametrize(("answer", "base"), [(100, 100), (100.9, 100), (None, 15), (0, 15), (-5, 15)])
def test_retry_in_seconds_get_jitter_and_none_or_zero_mean_the_default(answer: Any, base: int) -> None:
    engine = SimEngine()
    engine.enqueue(retrying_in(answer), 1)
    engine.step()
    [scheduled] = kinds(engine, EventKind.RETRY_SCHEDULED)
    assert base <= scheduled.detail["delay"] < base + 10
    assert isinstance(scheduled.detail["delay"], int)  # a float answer is truncated, as Ruby's to_i


def test_retry_in_receives_count_exception_and_record() -> None:
    seen: list[tuple[int, str, str]] = []

    def rule(count: int, exc: BaseException, record: JobRecord) -> None:
        seen.append((count, type(exc).__name__, record.job))

    one = failing(retry=2, retry_in=rule)
    run(SimEngine(), one)
    assert seen == [(0, "ValueError", one.name), (1, "ValueError", one.name)]


def test_retry_in_discard_runs_only_the_death_handlers() -> None:
    calls = Calls()
    one = failing(retry=3, retry_in=lambda *a: "discard", retries_exhausted=exhausted_into(calls))
    engine = run(engine_with(calls), one)
    assert engine.dead() == [] and engine.retries() == []
    assert [name for name, _ in calls.log] == ["death", "error"]
    assert kind_names(engine)[-4:] == ["failed", "discarded", "death_handler_called", "error_handler_called"]


def test_retry_in_kill_takes_the_exhaustion_path_at_once() -> None:
    calls = Calls()
    one = failing(retry=3, retry_in=lambda *a: "kill", retries_exhausted=exhausted_into(calls))
    engine = run(engine_with(calls), one)
    assert len(kinds(engine, EventKind.STARTED)) == 1
    assert len(engine.dead()) == 1
    assert [name for name, _ in calls.log] == ["exhausted", "death", "error"]


def test_a_raising_retry_in_is_reported_and_the_default_delay_used() -> None:
    def rule(count: int, exc: BaseException, record: JobRecord) -> int:
        raise ZeroDivisionError("bad rule")

    calls = Calls()
    engine = engine_with(calls)
    engine.enqueue(failing(retry=3, retry_in=rule), 1)
    engine.step()
    [scheduled] = kinds(engine, EventKind.RETRY_SCHEDULED)
    assert 15 <= scheduled.detail["delay"] < 25
    [(cls, context, _), job_error] = calls.named("error")
    assert cls == "ZeroDivisionError" and "retry_in" in context
    assert job_error[:2] == ("ValueError", "Job raised exception")
