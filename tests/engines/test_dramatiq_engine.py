"""The Dramatiq backend in deterministic mode: harness jobs translated, native actors run as they are."""

from __future__ import annotations

import dramatiq
import engine_backend_helpers as checks
import pytest
from dramatiq.middleware import Middleware

from harness import ConfigurationError
from harness.engines import EventKind, get_engine
from harness.engines.dramatiq import DramatiqEngine


@pytest.fixture
def engine():
    built = get_engine("dramatiq")
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
    checks.check_same_seed_same_log(DramatiqEngine)


def test_harness_options_become_actor_options(engine):
    @checks.job(name="five", retry=5, queue="high")
    def five() -> None:
        pass

    engine.register(five)
    actor = engine.broker.get_actor("five")
    assert actor.queue_name == "high" and actor.options["max_retries"] == 5


def _native_actors(broker):
    calls: dict[str, list] = {"flaky": [], "exhausted": [], "failure": []}

    @dramatiq.actor(broker=broker, max_retries=2, min_backoff=1000, max_backoff=5000)
    def native_flaky(n):
        calls["flaky"].append(n)
        raise RuntimeError("down")

    @dramatiq.actor(broker=broker, max_retries=10, throws=(KeyError,))
    def native_throws():
        raise KeyError("permanent")

    @dramatiq.actor(broker=broker, retry_when=lambda retries, exc: retries < 1)
    def native_when():
        raise RuntimeError("once more")

    @dramatiq.actor(broker=broker)
    def on_exhausted(message, info):
        calls["exhausted"].append(info)

    @dramatiq.actor(broker=broker)
    def on_failure(message, info):
        calls["failure"].append(info["type"])

    @dramatiq.actor(broker=broker, max_retries=1, on_retry_exhausted="on_exhausted", on_failure="on_failure")
    def native_callbacks():
        raise ValueError("bad")

    return calls, (native_flaky, native_throws, native_when, on_exhausted, on_failure, native_callbacks)


def test_native_actors_keep_their_own_settings(engine):
    # The user's actors are declared on their own broker; the engine re-declares them on its own.
    calls, actors = _native_actors(dramatiq.brokers.stub.StubBroker())
    flaky, throws, when, on_exhausted, on_failure, callbacks = actors
    for actor in (on_exhausted, on_failure):
        engine.register(actor)
    with engine.activate():
        engine.enqueue(flaky, 1)
        engine.enqueue(throws)
        engine.enqueue(when)
        engine.enqueue(callbacks)
        engine.run_until_quiet()
    started = {}
    for event in checks.kinds(engine, EventKind.STARTED):
        started[event.job] = started.get(event.job, 0) + 1
    assert started["native_flaky"] == 3  # max_retries=2: three runs
    assert started["native_throws"] == 1  # throws: straight to the dead-letter queue
    assert started["native_when"] == 2  # retry_when overrides max_retries
    assert started["native_callbacks"] == 2
    assert started["on_failure"] == 2  # Dramatiq's on_failure fires on every failed attempt
    assert calls["exhausted"] == [{"retries": 1, "max_retries": 1}]
    # min_backoff=1 s, max_backoff=5 s: the actor's own backoff, not Sidekiq's 15 s and up.
    flaky_delays = [
        e.detail["delay"] for e in checks.kinds(engine, EventKind.RETRY_SCHEDULED) if e.job == "native_flaky"
    ]
    assert len(flaky_delays) == 2 and all(1 <= d <= 5 for d in flaky_delays)
    dead = sorted(r.job for r in engine.dead())
    assert dead == ["native_callbacks", "native_flaky", "native_throws", "native_when"]
    assert sorted(m.actor_name for m in engine.broker.dead_letters) == dead


def test_death_handlers_fire_on_every_dead_letter(engine):
    deaths = []
    engine.hooks.death_handlers.append(lambda record, exc: deaths.append((record.job, type(exc).__name__)))
    _, actors = _native_actors(dramatiq.brokers.stub.StubBroker())
    with engine.activate():
        engine.enqueue(actors[1])
        engine.run_until_quiet()
    assert deaths == [("native_throws", "KeyError")]


def test_native_middleware_sees_every_attempt():
    seen = []

    class Audit(Middleware):
        def after_process_message(self, broker, message, *, result=None, exception=None):
            seen.append(type(exception).__name__ if exception else None)

    from dramatiq.middleware import default_middleware
    from dramatiq.middleware.time_limit import TimeLimit

    engine = DramatiqEngine(middleware=[Audit(), *[m() for m in default_middleware if m is not TimeLimit]])

    @checks.job(name="fails_once", retry=2)
    def fails_once() -> None:
        if not seen:
            raise RuntimeError("first")

    with engine.activate():
        fails_once.enqueue()
        engine.run_until_quiet()
    assert seen == ["Retry", None]  # a harness job's retry reaches Dramatiq as dramatiq.Retry(delay=...)


def test_unknown_actor_option_is_refused(engine):
    broker = dramatiq.brokers.stub.StubBroker()
    from dramatiq.middleware.time_limit import TimeLimit

    @dramatiq.actor(broker=broker, time_limit=10)
    def limited():
        pass

    with pytest.raises(ConfigurationError, match="time_limit"):
        engine.register(limited)
    assert isinstance(TimeLimit(), Middleware)
