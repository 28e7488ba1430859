"""The Celery backend in deterministic mode: harness jobs translated, native tasks run as declared."""

from __future__ import annotations

import engine_backend_helpers as checks
import pytest
from celery import Celery, Task, signals

from harness import ConfigurationError
from harness.engines import EventKind, get_engine
from harness.engines.celery import CeleryEngine

USER_APP = Celery("user_app", broker="memory://", set_as_current=False)
CALLS: dict[str, list] = {}


class AuditedTask(Task):
    """A user's base class: Celery calls on_retry on each retry and on_failure only at the end."""

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        CALLS.setdefault("on_retry", []).append(self.request.retries)

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        CALLS.setdefault("on_failure", []).append(type(exc).__name__)


@USER_APP.task(
    base=AuditedTask,
    autoretry_for=(RuntimeError,),
    max_retries=2,
    retry_backoff=60,
    retry_jitter=False,
    acks_late=True,
    reject_on_worker_lost=True,
)
def native_flaky(n):
    CALLS.setdefault("flaky", []).append(n)
    raise RuntimeError("down")


@USER_APP.task(bind=True, autoretry_for=(RuntimeError,), max_retries=5)
def native_bound(self, n):
    CALLS.setdefault("bound", []).append(self.request.retries)
    raise KeyError("not in autoretry_for")


@pytest.fixture
def engine():
    CALLS.clear()
    built = get_engine("celery")
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
    checks.check_same_seed_same_log(CeleryEngine)


def test_harness_options_become_a_bound_task(engine):
    @checks.job(name="three", retry=3, queue="high")
    def three() -> None:
        pass

    with engine.activate():
        three.enqueue()
    assert [r.job for r in engine.queued("high")] == ["three"] and engine.queued("default") == []
    assert engine.app.tasks["three"].max_retries == 3


def test_native_task_keeps_its_settings_and_base_class(engine):
    with engine.activate():
        engine.enqueue(native_flaky, 1)
        engine.run_until_quiet()
    task = engine.app.tasks[native_flaky.name]
    assert (task.max_retries, task.acks_late, task.reject_on_worker_lost) == (2, True, True)
    assert CALLS["flaky"] == [1, 1, 1]  # max_retries=2: three runs
    assert checks.delays(engine) == [60, 120]  # retry_backoff=60 without jitter: 60 * 2**n
    assert CALLS["on_retry"] == [0, 1]
    assert CALLS["on_failure"] == ["RuntimeError"]  # only once, at the end
    assert [r.job for r in engine.dead()] == [native_flaky.name]
    assert engine.app.AsyncResult(engine.dead()[0].id).state == "FAILURE"


def test_native_bound_task_outside_autoretry_for_fails_at_once(engine):
    deaths = []
    engine.hooks.death_handlers.append(lambda record, exc: deaths.append(type(exc).__name__))
    with engine.activate():
        engine.enqueue(native_bound, 1)
        engine.run_until_quiet()
    assert CALLS["bound"] == [0] and deaths == ["KeyError"]


def test_celery_signals_fire_for_each_retry():
    seen = []

    def on_retry(sender=None, **kwargs):
        seen.append(sender.name)

    signals.task_retry.connect(on_retry, weak=False)
    engine = CeleryEngine()
    try:

        @checks.job(name="retried_twice", retry=2)
        def retried_twice() -> None:
            raise ValueError("x")

        with engine.activate():
            retried_twice.enqueue()
            engine.run_until_quiet()
    finally:
        signals.task_retry.disconnect(on_retry)
        engine.close()
    assert seen == ["retried_twice", "retried_twice"]


def test_unknown_name_is_refused(engine):
    with pytest.raises(ConfigurationError, match="no job named"):
        engine.enqueue("missing")


def test_two_engines_do_not_share_queues():
    first, second = CeleryEngine(), CeleryEngine()

    @checks.job(name="shared_name")
    def shared_name() -> None:
        pass

    try:
        with first.activate():
            shared_name.enqueue()
        assert len(first.queued()) == 1 and second.queued() == []
    finally:
        first.close()
        second.close()
    assert len(checks.kinds(first, EventKind.ENQUEUED)) == 1
