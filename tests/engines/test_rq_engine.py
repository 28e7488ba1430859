"""The RQ backend in deterministic mode: harness jobs translated, native functions run as enqueued."""

from __future__ import annotations

import engine_backend_helpers as checks
import pytest
from rq import Callback, Retry
from rq.registry import FailedJobRegistry

from harness import ConfigurationError
from harness.engines import EventKind, get_engine
from harness.engines.rq import RQEngine

CALLS: dict[str, list] = {}


@pytest.fixture
def engine():
    CALLS.clear()
    built = get_engine("rq")
    yield built
    built.close()


@pytest.mark.parametrize(
    "check",
    [
        checks.check_retry_count_and_sidekiq_delays,
        checks.check_retry_false_and_zero_and_dead_false,
        checks.check_retry_in,
        checks.check_hooks_and_observers,
        checks.check_injected_crash_runs_the_job_again,
        checks.check_scheduled_queued_and_reset,
        checks.check_jobs_enqueue_jobs,
    ],
)
def test_harness_jobs(engine, check):
    check(engine)


def test_same_seed_same_log():
    checks.check_same_seed_same_log(RQEngine)


def native_flaky(n):
    CALLS.setdefault("flaky", []).append(n)
    raise RuntimeError("down")


def native_on_failure(job, connection, exc_type, exc, tb):
    CALLS.setdefault("on_failure", []).append(job.retries_left)


def test_harness_options_become_an_rq_retry(engine):
    @checks.job(name="four", retry=4, queue="high")
    def four() -> None:
        pass

    from rq.job import Job

    with engine.activate():
        job_id = four.enqueue()
    job = Job.fetch(job_id, connection=engine.connection)
    assert (job.origin, job.retries_left) == ("high", 4)


def test_native_retry_and_callbacks_are_the_users(engine):
    with engine.activate():
        engine.enqueue(
            native_flaky, 1, retry=Retry(max=2, interval=[5, 50]), on_failure=Callback(native_on_failure)
        )
        engine.run_until_quiet()
    assert CALLS["flaky"] == [1, 1, 1]  # Retry(max=2): three runs
    # RQ's own intervals, read from its list: 5 s then 50 s, no jitter.
    assert checks.delays(engine) == [5, 50]
    # The failure callback fires on every failed attempt, retried ones included.
    assert CALLS["on_failure"] == [2, 1, 0]
    assert [r.job for r in engine.dead()] == [f"{__name__}.native_flaky"]
    registry = FailedJobRegistry("default", connection=engine.connection)
    assert [r.id for r in engine.dead()] == registry.get_job_ids()


def test_native_job_without_retry_fails_at_once(engine):
    deaths = []
    engine.hooks.death_handlers.append(lambda record, exc: deaths.append(str(exc)))
    with engine.activate():
        engine.enqueue(native_flaky, 2, queue="low")
        engine.run_until_quiet()
    assert CALLS["flaky"] == [2] and deaths == ["down"]
    assert [r.queue for r in engine.dead()] == ["low"]


def test_worker_exception_handlers_run_on_every_attempt():
    seen = []
    engine = RQEngine(exception_handlers=[lambda job, typ, exc, tb: seen.append(job.retries_left)])
    with engine.activate():
        engine.enqueue(native_flaky, 3, retry=Retry(max=1, interval=5))
        engine.run_until_quiet()
    assert seen == [1, 0]


def test_unknown_native_option_is_refused(engine):
    with pytest.raises(ConfigurationError, match="retyr"):
        engine.enqueue(native_flaky, 1, retyr=Retry(max=1))


def test_failed_registry_outlives_virtual_days(engine):
    @checks.job(name="slowly_dies", retry=8)
    def slowly_dies() -> None:
        raise ValueError("still down")

    with engine.activate():
        slowly_dies.enqueue()
        engine.run_until_quiet()
    assert (
        engine.clock.time() - checks.kinds(engine, EventKind.ENQUEUED)[0].time > 3600
    )  # past hours of backoff
    assert [r.retry_count for r in engine.dead()] == [8]


def _record(name):
    def run(n):
        CALLS.setdefault("order", []).append(f"{name} {n}")

    run.__name__ = run.__qualname__ = f"run_{name}"
    return run


def test_queues_are_served_in_the_order_given_like_rq_worker_high_default():
    from harness import job

    low = job(queue="default", retry=0)(_record("low"))
    high = job(queue="high", retry=0)(_record("high"))

    def order(**options):
        CALLS.clear()
        engine = get_engine("rq", **options)
        try:
            with engine.activate():
                low.enqueue(1)  # `default` gets its first job before `high` exists
                low.enqueue(2)
                high.enqueue(3)
            engine.run_until_quiet()
        finally:
            engine.close()
        return CALLS["order"]

    assert order(queues=("high", "default")) == ["high 3", "low 1", "low 2"]
    assert order() == ["low 1", "low 2", "high 3"]  # unnamed queues: in the order they first got a job
    with pytest.raises(ConfigurationError, match="priority order"):
        get_engine("rq", queues="high")
