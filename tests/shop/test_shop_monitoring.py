"""Monitoring: orders stuck before a step, the retry-set alarm, and the JSON stats view."""

from __future__ import annotations

import json

from harness import job
from harness.world import World
from scenarios.shop import app, jobs_idempotent, jobs_newsletter
from scenarios.shop.monitoring import OPS_CHANNEL, RetryAlarm, stats, stats_json, unfinished_orders
from scenarios.shop.orders import create_order, create_product, create_user, load_order

GRACE = 15 * 60.0


@job(retry=5)
def flaky_charge(n: int) -> None:
    app.payments().charge(customer_id=f"cus_{n}", payment_method_id="pm_visa", amount_cents=100)


def place() -> int:
    return create_order(create_user(), create_product(), complete_with=jobs_idempotent.complete_order)


def test_orders_not_charged_after_the_grace_period_are_found(world: World) -> None:
    world.services.behaviours["payments"].crash = True
    stuck = place()
    world.engine.run_until_quiet(max_time=60)
    assert unfinished_orders(grace_s=GRACE)["not_charged"] == []  # still within the grace period

    world.clock.advance(GRACE)
    found = unfinished_orders(grace_s=GRACE)
    assert found == {"not_charged": [stuck], "not_emailed": [], "not_fulfilled": []}

    world.services.behaviours["payments"].crash = False
    world.engine.run_until_quiet()
    assert unfinished_orders(grace_s=GRACE) == {"not_charged": [], "not_emailed": [], "not_fulfilled": []}


def test_orders_charged_but_not_emailed_are_found(world: World) -> None:
    world.services.behaviours["email"].crash = True
    order_id = place()
    world.engine.run_until_quiet(max_time=GRACE)
    world.clock.advance(GRACE)
    found = unfinished_orders(grace_s=GRACE)
    assert found["not_charged"] == [] and found["not_emailed"] == [order_id]


def _chat_alerts(world: World) -> list[dict]:
    return [r for r in world.services.chat.records() if r.get("channel") == OPS_CHANNEL]


def test_retry_alarm_posts_once_per_crossing(world: World) -> None:
    alarm = RetryAlarm(threshold=3)
    world.services.behaviours["payments"].crash = True
    for n in range(5):
        flaky_charge.enqueue(n)
    world.engine.run_until_quiet(max_time=1)
    assert len(world.engine.retries()) == 5

    assert [alarm.check(world.engine) for _ in range(3)] == [True, False, False]
    [alert] = _chat_alerts(world)
    assert "5 jobs are waiting to be retried" in alert["text"]

    world.services.behaviours["payments"].crash = False
    world.engine.run_until_quiet()
    assert alarm.check(world.engine) is False  # back under the threshold: the alarm re-arms

    world.services.behaviours["payments"].crash = True
    for n in range(4):
        flaky_charge.enqueue(n)
    world.engine.run_until_quiet(max_time=1)
    assert [alarm.check(world.engine), alarm.check(world.engine)] == [True, False]
    assert len(_chat_alerts(world)) == 2


def test_retry_alarm_stays_quiet_at_the_threshold(world: World) -> None:
    world.services.behaviours["payments"].crash = True
    for n in range(3):
        flaky_charge.enqueue(n)
    world.engine.run_until_quiet(max_time=1)
    assert RetryAlarm(threshold=3).check(world.engine) is False
    assert _chat_alerts(world) == []


def test_stats_count_queues_latency_retries_and_outcomes(world: World) -> None:
    user_id = create_user()
    for issue in ("2026-01", "2026-02"):
        jobs_newsletter.send_newsletter.enqueue(user_id, issue)
    world.clock.advance(30)
    create_order(user_id, create_product(), complete_with=jobs_idempotent.complete_order)
    world.clock.advance(12)

    view = stats(world.engine)
    assert view["enqueued"] == 3
    assert view["queues"]["high"] == {"size": 1, "latency_s": 12.0}
    assert view["queues"]["default"] == {"size": 2, "latency_s": 42.0}
    assert (view["retries"], view["dead"], view["processed"], view["failed"]) == (0, 0, 0, 0)

    world.engine.run_until_quiet()
    after = json.loads(stats_json(world.engine))
    assert after["enqueued"] == 0 and after["queues"]["default"]["latency_s"] == 0.0
    assert after["processed"] == 5  # two newsletters and the three chained completion jobs


def test_high_queue_runs_before_a_backlog_on_default(world: World) -> None:
    world.services.behaviours["email"].sleep = 20  # every email call takes 20 virtual seconds
    user_id = create_user()
    for n in range(10):
        jobs_newsletter.send_newsletter.enqueue(user_id, f"issue-{n}")
    order_id = place()
    world.engine.run_until_quiet()

    order = load_order(order_id)
    newsletters = [r for r in world.services.email.records() if r["template_id"] == "newsletter"]
    assert len(newsletters) == 10
    # Ten newsletters take 400 virtual seconds of email calls; completion, on `high`, waited for none
    # of them: only for its own search and send (40 s).
    assert order.fulfilled_at is not None and order.fulfilled_at - order.created_at < 20 * 10
