"""The engine the shop's worker runs on: harness jobs as RQ jobs on a real Redis, with Sidekiq's rules.

Jobs run in this process through RQ's own `SimpleWorker` in burst mode (the worker process is tested in
`test_shop_worker.py`), so each test can read the queues, the retry set and the dead set in between. Each
test has a queue prefix of its own in Redis database 6 (which no test flushes) and deletes its keys afterwards.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from harness import job
from harness.engines.workers import redis_available
from scenarios.shop import worker
from scenarios.shop.worker import RedisQueues, Settings

REDIS_URL = "redis://127.0.0.1:6379/6"

pytestmark = [pytest.mark.redis, pytest.mark.timeout(60)]

calls: list[str] = []


@job(queue="high", retry=1)
def flaky(order_id: int) -> None:
    calls.append(f"flaky {order_id}")
    raise RuntimeError("payments is down")


@job(queue="default", retry=0)
def fragile(order_id: int) -> None:
    calls.append(f"fragile {order_id}")
    raise RuntimeError("the chat webhook is down")


@job
def chained(order_id: int) -> None:
    calls.append(f"chained {order_id}")
    fragile.enqueue(order_id)


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisQueues]:
    if not redis_available(REDIS_URL):
        if os.environ.get("CI"):
            raise RuntimeError(f"Redis is not reachable at {REDIS_URL} and CI is set")
        pytest.skip(f"no Redis at {REDIS_URL}")
    built = RedisQueues.connect(Settings(redis_url=REDIS_URL, queue_prefix=f"t{uuid.uuid4().hex[:12]}"))
    for one in (flaky, fragile, chained):
        built.register(one)
    monkeypatch.setattr(worker, "_engine", built)  # what RQ's `perform` runs the jobs on
    calls.clear()
    try:
        yield built
    finally:
        built.reset()
        built.close()


def _work(engine: RedisQueues) -> None:
    """Run what is queued, in this process, with RQ's worker code."""
    from rq import SimpleWorker
    from rq.timeouts import BaseDeathPenalty

    class NoDeathPenalty(BaseDeathPenalty):  # RQ's timeout would need SIGALRM, which pytest-timeout owns
        def setup_death_penalty(self) -> None:
            pass

        def cancel_death_penalty(self) -> None:
            pass

    class InProcess(SimpleWorker):
        death_penalty_class = NoDeathPenalty

        def _install_signal_handlers(self) -> None:
            pass

        # No command channel: its listener thread can take up to 60 s to stop once unsubscribed (RQ polls
        # it with sleep_time=60), which once outlasted the test's timeout. Nothing sends it commands here.
        def subscribe(self) -> None:
            pass

        def unsubscribe(self) -> None:
            pass

    queues = [engine._queue(name) for name in ("high", "default")]
    InProcess(queues, connection=engine.connection, name=f"{engine.prefix}-in-process").work(
        burst=True, logging_level="WARNING"
    )


def test_a_failed_attempt_is_retried_later_and_reported_each_time(engine: RedisQueues) -> None:
    errors: list[dict[str, Any]] = []
    deaths: list[Any] = []
    engine.hooks.error_handlers.append(lambda exc, context: errors.append(context["job"]))
    engine.hooks.death_handlers.append(lambda record, exc: deaths.append(record))
    with engine.activate():
        job_id = flaky.enqueue(7)
    assert [r.id for r in engine.queued("high")] == [job_id]
    before = time.time()
    _work(engine)

    assert calls == ["flaky 7"]
    [waiting] = engine.retries()
    assert (waiting.id, waiting.job, waiting.args, waiting.retry_count) == (job_id, flaky.name, [7], 0)
    # Sidekiq's first delay, 15 to 24 s after the failure (RQ keeps whole seconds: up to 1 s earlier)
    assert waiting.run_at is not None and waiting.run_at - before >= 14 and waiting.run_at - time.time() <= 25
    assert engine.scheduled() == [] and engine.dead() == []
    assert [e["args"] for e in errors] == [[7]] and deaths == []  # reported, not dead: it has a retry left
    assert engine.busy() and engine.next_due() == pytest.approx(waiting.run_at)
    assert engine.stats.processed == 1 and engine.stats.failed == 1


def test_the_last_failure_runs_the_death_handlers_and_files_the_job_as_dead(engine: RedisQueues) -> None:
    deaths: list[Any] = []
    engine.hooks.death_handlers.append(lambda record, exc: deaths.append((record.job, str(exc))))
    with engine.activate():
        chained.enqueue(3)  # a job that enqueues the next one through the engine, as the shop's jobs do
    _work(engine)

    assert calls == ["chained 3", "fragile 3"]
    assert deaths == [(fragile.name, "the chat webhook is down")]
    [dead] = engine.dead()
    assert (dead.job, dead.args, dead.queue, dead.retry_count) == (fragile.name, [3], "default", 0)
    assert engine.retries() == [] and not engine.busy()


def test_a_job_enqueued_for_later_waits_in_the_schedule(engine: RedisQueues) -> None:
    with engine.activate():
        job_id = fragile.enqueue_in(3600, 5)
    [later] = engine.scheduled()
    assert later.id == job_id and later.retry_count is None
    assert later.run_at == pytest.approx(time.time() + 3600, abs=5)
    assert engine.queued() == [] and engine.retries() == []
    assert engine.run_until_quiet(max_time=0.2) == 0  # it waits in real time, and nothing is due


def test_retry_delays_follow_sidekiq_scaled_and_reset_forgets_the_prefix(engine: RedisQueues) -> None:
    delays = engine.retry_delays(4)
    lowest = [15, 16, 31, 96]  # count**4 + 15, before the jitter of up to 10 * (count + 1) - 1 s
    assert all(low <= d < low + 10 * (n + 1) for n, (d, low) in enumerate(zip(delays, lowest, strict=True)))
    engine.retry_delay_scale = 0.1
    assert all(1 <= d <= 11 for d in engine.retry_delays(3))
    engine.retry_delay_scale = 0
    assert engine.retry_delays(2) == [0, 0]  # RQ then retries at once

    with engine.activate():
        flaky.enqueue(1)
    assert engine.connection.keys(f"rq:*:{engine.prefix}-*")
    engine.reset()
    assert engine.connection.keys(f"*{engine.prefix}-*") == []
    assert engine.queued() == []


def test_a_sidekiq_option_rq_cannot_honour_is_refused(engine: RedisQueues) -> None:
    from harness.errors import ConfigurationError

    @job(retry_in=lambda count, exc, record: 5)
    def custom(order_id: int) -> None: ...

    with pytest.raises(ConfigurationError, match="retry_in"):
        engine.register(custom)
    with pytest.raises(ConfigurationError, match="no job named 'nope'"):
        engine.enqueue("nope", 1)
