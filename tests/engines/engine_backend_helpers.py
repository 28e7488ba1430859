"""Checks every native backend must pass for harness jobs, shared by the per-backend test modules.

Each check takes a freshly built engine, runs a few harness jobs through it and asserts what the
protocol promises (Sidekiq's routing, hooks, observers, crashes, reset), reading the engine's own state.
"""

from __future__ import annotations

import threading
from typing import Any

from harness import InjectedCrash, job
from harness.engines.base import AttemptObserver, Engine, EventKind, JobRecord


def kinds(engine: Engine, kind: EventKind) -> list[Any]:
    return [event for event in engine.events if event.kind == kind]


def delays(engine: Engine) -> list[float]:
    return [event.detail["delay"] for event in kinds(engine, EventKind.RETRY_SCHEDULED)]


class Recorder(AttemptObserver):
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, str | None, int]] = []

    def attempt_started(self, record: JobRecord, attempt: int) -> None:
        self.calls.append(("started", attempt, None, threading.get_ident()))

    def attempt_finished(self, record: JobRecord, attempt: int, exc: BaseException | None) -> None:
        self.calls.append(("finished", attempt, type(exc).__name__ if exc else None, threading.get_ident()))


def check_retry_count_and_sidekiq_delays(engine: Engine) -> None:
    @job(retry=3)
    def always_fails() -> None:
        raise ValueError("nope")

    with engine.activate():
        always_fails.enqueue()
        engine.run_until_quiet()
    assert len(kinds(engine, EventKind.STARTED)) == 4
    assert [r.retry_count for r in engine.dead()] == [3]
    for count, delay in enumerate(delays(engine)):
        assert count**4 + 15 <= delay < count**4 + 15 + 10 * (count + 1)
    assert engine.retries() == [] and engine.queued() == []
    assert engine.stats.processed == 4 and engine.stats.failed == 4


def check_retry_false_and_zero_and_dead_false(engine: Engine) -> None:
    deaths: list[str] = []
    errors: list[str] = []
    exhausted: list[str] = []
    engine.hooks.death_handlers.append(lambda record, exc: deaths.append(record.job))
    engine.hooks.error_handlers.append(lambda exc, ctx: errors.append(ctx["job"]["job"]))

    @job(name="no_retry", retry=False)
    def no_retry() -> None:
        raise ValueError("once")

    @job(name="zero", retry=0, retries_exhausted=lambda record, exc: exhausted.append(record.job))
    def zero() -> None:
        raise ValueError("once")

    @job(name="undead", retry=1, dead=False)
    def undead() -> None:
        raise ValueError("twice")

    with engine.activate():
        for j in (no_retry, zero, undead):
            j.enqueue()
        engine.run_until_quiet()
    assert [r.job for r in engine.dead()] == ["zero"]
    assert sorted(deaths) == ["no_retry", "undead", "zero"]  # retry=False still runs death handlers
    assert sorted(errors) == ["no_retry", "undead", "undead", "zero"]
    assert exhausted == ["zero"]
    assert [e.job for e in kinds(engine, EventKind.DISCARDED)] == ["undead"]
    assert engine.retries() == [] and engine.queued() == []


def check_retry_in(engine: Engine) -> None:
    def rule(count: int, exc: BaseException, record: JobRecord) -> Any:
        return {"KeyError": "kill", "LookupError": "discard"}.get(type(exc).__name__, 600)

    @job(name="ruled", retry=5, retry_in=rule)
    def ruled(kind: str) -> None:
        raise {"kill": KeyError, "discard": LookupError}.get(kind, RuntimeError)(kind)

    with engine.activate():
        ruled.enqueue("kill")
        ruled.enqueue("discard")
        ruled.enqueue("slow")
        engine.run_until_quiet(max_time=700)
    assert [r.args for r in engine.dead()] == [["kill"]]
    assert [e.job_id for e in kinds(engine, EventKind.DISCARDED)] != []
    assert 600 <= delays(engine)[0] < 610
    assert [r.args for r in engine.retries()] == [["slow"]]


def check_hooks_and_observers(engine: Engine) -> None:
    seen: list[tuple[str, int]] = []
    recorder = Recorder()
    engine.hooks.observers.append(recorder)
    runs: list[int] = []

    def server(record: JobRecord, call_next: Any) -> Any:
        seen.append(("before", record.attempt))
        try:
            return call_next()
        finally:
            seen.append(("after", record.attempt))

    def client(record: JobRecord, call_next: Any) -> Any:
        return None if record.args == ["blocked"] else call_next()

    engine.hooks.server_middleware.append(server)
    engine.hooks.client_middleware.append(client)

    @job(name="twice", retry=3)
    def twice(tag: str) -> None:
        runs.append(threading.get_ident())
        if len(runs) < 3:
            raise RuntimeError("transient")

    with engine.activate():
        assert twice.enqueue("blocked") is None
        assert twice.enqueue("ok") is not None
        engine.run_until_quiet()
    assert seen == [("before", 1), ("after", 1), ("before", 2), ("after", 2), ("before", 3), ("after", 3)]
    assert [(c[0], c[1], c[2]) for c in recorder.calls] == [
        ("started", 1, None),
        ("finished", 1, "RuntimeError"),
        ("started", 2, None),
        ("finished", 2, "RuntimeError"),
        ("started", 3, None),
        ("finished", 3, None),
    ]
    # The injector relies on this: the observer runs in the thread that runs the job.
    assert {c[3] for c in recorder.calls} == set(runs)
    assert len(kinds(engine, EventKind.ENQUEUED)) == 1 and len(kinds(engine, EventKind.SUCCEEDED)) == 1


def check_injected_crash_runs_the_job_again(engine: Engine) -> None:
    """A harness job's worker dies mid-job: with the settings the adapter gives harness jobs, the job runs
    again. Dramatiq and Celery (acks_late) redeliver the same message, counting no retry; RQ's cleanup
    retries the abandoned job, which its surviving worker reports as `AbandonedJobError`."""
    runs: list[int] = []
    errors: list[str] = []
    engine.hooks.error_handlers.append(lambda exc, ctx: errors.append(type(exc).__name__))

    @job(name="crashy", retry=2)
    def crashy() -> str:
        runs.append(1)
        if len(runs) == 1:
            raise InjectedCrash("line 3")
        return "done"

    with engine.activate():
        crashy.enqueue()
        engine.run_until_quiet()
    assert len(runs) == 2 and len(kinds(engine, EventKind.SUCCEEDED)) == 1 and engine.dead() == []
    [crashed] = kinds(engine, EventKind.CRASHED)
    assert crashed.detail["error_class"] == "InjectedCrash" and crashed.attempt == 1
    assert [e.attempt for e in kinds(engine, EventKind.STARTED)] == [1, 2]
    if engine.name == "rq":
        assert errors == ["AbandonedJobError"] and len(kinds(engine, EventKind.RETRY_SCHEDULED)) == 1
    else:
        assert errors == [] and kinds(engine, EventKind.FAILED) == [] and kinds(engine, EventKind.RETRY_SCHEDULED) == []
        assert len(kinds(engine, EventKind.RECOVERED)) == 1
    assert engine.stats.processed == 2 and engine.stats.failed == 1


def check_scheduled_queued_and_reset(engine: Engine) -> None:
    @job(name="later", retry=1)
    def later(n: int) -> None:
        raise ValueError(n)

    with engine.activate():
        later.enqueue_in(3600, 1)
        later.enqueue(2)
        assert [r.args for r in engine.scheduled()] == [[1]]
        assert engine.scheduled()[0].run_at == engine.clock.time() + 3600
        assert [r.args for r in engine.queued()] == [[2]]
        engine.step()
        assert [r.args for r in engine.retries()] == [[2]] and engine.queued() == []
        engine.run_until_quiet()
    assert sorted(r.args[0] for r in engine.dead()) == [1, 2]
    first_events = [(e.kind, e.attempt) for e in engine.events]
    engine.reset()
    assert engine.dead() == [] and engine.events == [] and engine.stats.processed == 0
    assert engine.queued() == [] and engine.retries() == [] and engine.scheduled() == []
    with engine.activate():
        engine.enqueue("later", 3)  # registrations survive a reset
        assert [r.args for r in engine.queued()] == [[3]]
        engine.reset()
        later.enqueue_in(3600, 1)
        later.enqueue(2)
        engine.run_until_quiet()
    assert [(e.kind, e.attempt) for e in engine.events] == first_events


def check_same_seed_same_log(make: Any) -> None:
    logs = []
    for _ in range(2):
        engine = make(seed=7)

        @job(name="seeded", retry=4)
        def seeded() -> None:
            raise ValueError("x")

        with engine.activate():
            seeded.enqueue()
            engine.run_until_quiet()
        logs.append([e.to_dict() for e in engine.events])
        engine.close()
    assert logs[0] == logs[1] and len(logs[0]) > 10


def check_jobs_enqueue_jobs(engine: Engine) -> None:
    done: list[str] = []

    @job(name="ship", queue="low")
    def ship(order: int) -> None:
        done.append(f"ship {order}")

    @job(name="charge")
    def charge(order: int) -> None:
        done.append(f"charge {order}")
        ship.enqueue(order)

    engine.register(ship)
    engine.enqueue(charge, 7)  # outside activate(): step() makes the engine current for the job
    engine.run_until_quiet()
    assert done == ["charge 7", "ship 7"]
    assert [e.job for e in kinds(engine, EventKind.SUCCEEDED)] == ["charge", "ship"]
