"""Lesson 15: the same job delivered twice at the same moment. At-least-once engines do it (a visibility
timeout that expires while the first worker is busy, an orphaned job recovered while it still runs). The
idempotent stage's email job searches before it sends: safe under every retry, because a retry runs
after the failed attempt. Two deliveries at once both search before either sends, and both send. A Redis
lock per order around the search and the send turns the second delivery away; the engine runs it again
later and it finds the email recorded."""

from __future__ import annotations

import json

import pytest

from fake_services.state import FakeServices
from fake_services.testing import serve_in_thread
from harness.engines.workers import RealWorker
from harness.explore.concurrent import Interleavings, explore_concurrent
from scenarios.shop import db
from scenarios.shop.orders import create_product, create_user, load_order, save_order, update_order
from scenarios.shop.scenarios import EMAIL_AT_ONCE, EMAIL_AT_ONCE_LOCKED, IDEMPOTENT


def test_search_before_send_is_safe_under_retries(explored):
    assert explored(IDEMPOTENT).safe


def test_two_deliveries_at_once_send_the_confirmation_twice(engine_name):
    report = explore_concurrent(EMAIL_AT_ONCE, engine=engine_name)
    assert not report.safe
    first = report.unsafe[0]
    assert first.preemptions == 1
    assert first.story().startswith(
        "delivery A called email.search and was stopped before `scenarios/shop/jobs_idempotent.py:45`; "
        "delivery B called email.search, email.send and ran to the end; delivery A called email.send"), first.story()
    assert any("order 1 was emailed 2 times" in v for v in first.violations)
    # The interleaving replays from the schedule the report printed.
    with Interleavings(EMAIL_AT_ONCE, engine=engine_name) as again:
        replayed = again.replay(first.schedule_json())
    assert replayed.violations == first.violations and replayed.story() == first.story()


def test_without_a_preemption_the_deliveries_run_one_after_the_other_and_are_safe(engine_name):
    assert explore_concurrent(EMAIL_AT_ONCE, engine=engine_name, preemptions=0).safe


def test_a_lock_around_search_and_send_is_safe_in_every_interleaving(engine_name):
    report = explore_concurrent(EMAIL_AT_ONCE_LOCKED, engine=engine_name)
    assert report.safe, report.to_text()
    assert report.failures.get("LockBusy", 0) > 0  # the lock really turned a delivery away
    assert json.loads(json.dumps(report.to_dict()))["verdict"] == "SAFE"


#: A Redis database per engine for the real-worker pair, used by no other test (flushed when it closes).
REAL_DB = {"rq": 7, "dramatiq": 1, "celery": 2}


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize("engine", sorted(REAL_DB))
def test_a_real_worker_pair_on_redis_delivered_the_same_job_at_once(engine, engine_name, real_redis):
    """The same on the engines' own workers: two worker processes on a real Redis each take one delivery
    of the email job at the same moment, against the fake services over HTTP and the shop's database.
    The email provider answers in half a second, so the second delivery searches while the first one's
    send is still on its way: both find nothing and both send. With the lock, the second delivery stops
    with `LockBusy`, its engine retries it, and it finds the email recorded."""
    if engine_name != "sim":
        pytest.skip("starts each engine's own workers whatever --harness-engine says: run once, with the default")
    url = real_redis(REAL_DB[engine], "the real-worker pair")
    services = FakeServices()
    services.behaviours["email"].sleep = 0.5  # a slow provider: the window between search and send
    with serve_in_thread(services) as services_url:
        env = {"HARNESS_SERVICES_URL": services_url, "DATABASE_URL": db.database_url(), "SHOP_REDIS_URL": url}
        with RealWorker(engine, url, env=env) as worker:
            for stage, emails in (("jobs_idempotent", 2), ("jobs_locked", 1)):
                order_id = _charged_order()  # order 1 again: the emails of the stage before go too
                services.email.clear()
                report = worker.deliver_at_once(
                    f"scenarios.shop.{stage}:send_confirmation_email", [order_id],
                    setup="scenarios.shop.app:connect_from_env", retry_delay=0.5,
                )
                sent = services.email.records()
                context = (stage, sent, report, worker.log())
                assert report.overlapped and report.completed, context
                assert report.workers == 2 and len({run.pid for run in report.runs if run.run == 1}) == 2, context
                assert len(sent) == emails and all(e["template_data"] == {"order_id": order_id} for e in sent), context
                if stage == "jobs_locked":
                    assert report.failures().get("LockBusy", 0) >= 1, context
                    assert load_order(order_id).email_id == sent[0]["email_id"], context


def _charged_order() -> int:
    """An order the first job has charged, in the shop's own database (the workers read it there)."""
    db.reset_data()
    order_id = save_order(create_user(), create_product())
    update_order(order_id, status="charged", charge_id="ch_1")
    return order_id
