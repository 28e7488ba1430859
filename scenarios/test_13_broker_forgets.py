"""Lesson 13: a broker that forgets. A Redis restarted without persistence (or flushed, or failed over to
an empty replica) drops every queued, scheduled and retrying job, and nothing raises: the idempotent
stage, safe under every retry, leaves an order charged and never shipped, and error reporting stays
silent. Only a monitor of business outcomes (every order completed within an hour) notices; the fix is a
reconciler on a timer outside the broker that pushes stuck orders on."""

from __future__ import annotations

import pytest

from harness.engines.workers import RealWorker
from harness.explore import Explorer
from scenarios.shop.scenarios import FORGETFUL_BROKER, FORGETFUL_BROKER_RECONCILED, IDEMPOTENT


def test_a_forgetful_broker_stops_an_order_halfway_and_only_the_monitor_notices(explored):
    report = explored(FORGETFUL_BROKER)
    lost = report.found(fault="forget", text="order 1 never completed")
    assert lost, report.to_text()
    assert all("nothing was reported to the error catcher" in " ".join(u.violations) for u in lost)
    assert any("the broker forgot everything it held, 1 job (send_confirmation_email)" in u.story for u in lost)


def test_error_reporting_sees_nothing_of_the_loss(engine_name):
    explorer = Explorer(FORGETFUL_BROKER, engine=engine_name)
    try:
        result = explorer.replay('[{"attempt":1,"fault":"forget","point":{"kind":"broker"}}]')
        assert any("never completed" in v for v in result.violations)
        assert explorer.world.services.error_catcher.records() == []
        assert [e.detail for e in explorer.world.engine.events if e.kind == "lost"] == [{"cause": "broker"}]
    finally:
        explorer.close()


def test_a_reconciler_on_a_timer_completes_every_order(explored):
    report = explored(FORGETFUL_BROKER_RECONCILED)
    assert report.safe, report.to_text()


def test_the_stages_without_the_option_never_lose_their_broker(explored):
    assert not explored(IDEMPOTENT).found(fault="forget")


#: A Redis database per engine for the real-worker case, used by no other test (flushed when it closes).
REAL_DB = {"rq": 3, "dramatiq": 4, "celery": 5}


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("engine", sorted(REAL_DB))
def test_a_real_worker_on_a_real_redis_that_forgets(engine, engine_name, real_redis):
    """The same loss on the engines' own workers: a probe job runs, a second waits, and the worker's Redis
    database is flushed (what a restart without persistence leaves). Nothing raises. The running job
    still finishes: it is in the worker's hands. RQ fetches one job at a time, so the queued one is gone
    for good. Dramatiq and Celery prefetch messages into the worker process, so a job already prefetched
    survives the flush (seen on every run here), and everything beyond the prefetch would not."""
    if engine_name != "sim":
        pytest.skip("starts each engine's own worker whatever --harness-engine says: run once, with the default")
    url = real_redis(REAL_DB[engine], "the real-worker case")
    with RealWorker(engine, url) as worker:
        report = worker.lose_broker(wait=4.0)
    assert report.evidence["keys_flushed"] > 0, report
    assert report.running_finished, report
    if engine == "rq":
        assert not report.queued_ran, report
