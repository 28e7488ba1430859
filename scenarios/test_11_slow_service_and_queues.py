"""Lesson 11, queues: when email turns slow, a newsletter campaign holds the worker for minutes. On one
queue a customer's order waits behind the whole campaign; with order completion on `high`, served before
`default`, the order completes in the time its own jobs take while the campaign backs up on `default`.

Every figure is measured on the virtual clock: the order row's timestamps, the engine's event log and the
shop's stats view (per-queue size and latency), sampled after each job the worker runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from harness import Job
from harness.engines.base import EventKind
from harness.world import World
from scenarios.shop import jobs_idempotent, load_order, reset_data
from scenarios.shop.jobs_newsletter import NEWSLETTER_TEMPLATE, send_newsletter
from scenarios.shop.monitoring import stats
from scenarios.shop.orders import create_order, create_product, create_user

#: Subscribers of the campaign, one newsletter job each.
CAMPAIGN = 12
#: Seconds the slow email service takes to answer each call (a newsletter makes two: search, send).
SLOW_EMAIL_S = 30.0
ISSUE = "2026-01"

#: The shop before it had queues: the newsletter on the same queue as order completion.
NEWSLETTER_ON_ONE_QUEUE = Job(
    send_newsletter.fn,
    name=f"{__name__}.send_newsletter_on_one_queue",
    options=replace(send_newsletter.options, queue=jobs_idempotent.complete_order.options.queue),
)

ORDER_JOBS = {
    jobs_idempotent.complete_order.name,
    jobs_idempotent.send_confirmation_email.name,
    jobs_idempotent.request_fulfillment.name,
}
NEWSLETTER_JOBS = {send_newsletter.name, NEWSLETTER_ON_ONE_QUEUE.name}

#: Engines whose in-process mode fetches in an order their real workers do not, so a fast `high` queue
#: there would show the harness's polling order, not the engine's behaviour.
NO_QUEUE_PRIORITY = {
    "dramatiq": "Dramatiq has no queue priority: a worker consumes every queue at once and orders the "
    "messages it prefetched by actor priority; the in-process Dramatiq engine polls its queues in the "
    "order their first job was registered, and models neither",
    "celery": "a Celery worker on Redis takes from its queues in turn (kombu's queue_order_strategy "
    "'round_robin'; 'priority' must be set in broker_transport_options); the in-process Celery engine "
    "polls its queues in the order their first task was registered and has no such setting",
}


@dataclass
class Run:
    """What one campaign-plus-order run measured."""

    completion_s: float
    own_work_s: float
    waited_behind_s: float
    newsletters_first: int
    placed: dict[str, Any]
    at_completion: dict[str, Any]
    while_in_flight: list[dict[str, Any]] = field(default_factory=list)
    peak_default_latency_s: float = 0.0

    def high_latencies(self) -> list[float]:
        return [s["queues"]["high"]["latency_s"] for s in [self.placed, *self.while_in_flight]]


def _runs(world: World) -> dict[str, tuple[str, float, float]]:
    """Job id -> (job name, start, end) for every attempt that succeeded, from the event log."""
    started = {e.job_id: e.time for e in world.engine.events if e.kind is EventKind.STARTED}
    return {e.job_id: (e.job, started[e.job_id], e.time) for e in world.engine.events if e.kind is EventKind.SUCCEEDED}


def run_campaign(world: World, newsletter: Job) -> Run:
    """Email turns slow, a campaign is enqueued, then a customer orders; run the worker until the order
    is completed (sampling the stats view after each job), then until the campaign is sent."""
    reset_data()
    world.services.behaviours["email"].sleep = SLOW_EMAIL_S
    readers = [create_user(name=f"Reader {i}", email=f"reader{i}@example.com") for i in range(CAMPAIGN)]
    customer, product = create_user(), create_product()
    with world.engine.activate():
        for reader in readers:
            newsletter.enqueue(reader, ISSUE)
        order_id = create_order(customer, product, complete_with=jobs_idempotent.complete_order)
    placed = stats(world.engine)
    in_flight = []
    for _ in range(CAMPAIGN + 4):  # the campaign, the order's three jobs, one to spare
        if load_order(order_id).fulfilled_at is not None:
            break
        assert world.engine.step(), "the worker went idle before the order was completed"
        in_flight.append(stats(world.engine))
    order = load_order(order_id)
    assert order.status == "completed" and order.fulfilled_at is not None, order
    at_completion = in_flight[-1]
    peak = at_completion["queues"]["default"]["latency_s"]
    while world.engine.step():
        peak = max(peak, stats(world.engine)["queues"]["default"]["latency_s"])
    runs = _runs(world)
    placed_at, done_at = order.created_at, order.fulfilled_at
    own = [end - start for name, start, end in runs.values() if name in ORDER_JOBS]
    first_order_job = min(start for name, start, _ in runs.values() if name in ORDER_JOBS)
    ahead = [
        (start, end)
        for name, start, end in runs.values()
        if name in NEWSLETTER_JOBS and placed_at <= start and end <= done_at
    ]
    sent = [r for r in world.services.email.records() if r.get("template_id") == NEWSLETTER_TEMPLATE]
    assert len(sent) == CAMPAIGN, f"{len(sent)} of {CAMPAIGN} newsletters were sent"
    return Run(
        completion_s=done_at - placed_at,
        own_work_s=sum(own),
        waited_behind_s=sum(end - start for start, end in ahead),
        newsletters_first=sum(1 for start, _ in ahead if start < first_order_job),
        placed=placed,
        at_completion=at_completion,
        while_in_flight=in_flight,
        peak_default_latency_s=peak,
    )


def test_on_one_queue_the_order_waits_behind_the_whole_campaign(shop_world):
    run = run_campaign(shop_world, NEWSLETTER_ON_ONE_QUEUE)
    queues = run.placed["queues"]
    assert queues["high"]["size"] == CAMPAIGN + 1 and queues["default"]["size"] == 0
    # First in, first out: every newsletter enqueued before the order ran before any of its jobs.
    assert run.newsletters_first == CAMPAIGN
    assert run.waited_behind_s > run.own_work_s > 0
    assert run.completion_s == pytest.approx(run.waited_behind_s + run.own_work_s)
    # The stats view shows it: the queue's latency reached the time the campaign held the worker.
    assert max(run.high_latencies()) >= run.waited_behind_s


def test_on_the_high_queue_the_order_completes_at_once_while_default_backs_up(shop_world, engine_name):
    if engine_name in NO_QUEUE_PRIORITY:
        pytest.skip(NO_QUEUE_PRIORITY[engine_name])
    fast = run_campaign(shop_world, send_newsletter)
    queues = fast.placed["queues"]
    assert queues["high"]["size"] == 1 and queues["default"]["size"] == CAMPAIGN
    # No newsletter ran while the order was in flight: it took what its own jobs took.
    assert fast.waited_behind_s == 0 and fast.newsletters_first == 0
    assert fast.completion_s == pytest.approx(fast.own_work_s)
    assert max(fast.high_latencies()) <= fast.own_work_s
    # Meanwhile `default` backed up: the whole campaign still waiting, for as long as the order took.
    backlog = fast.at_completion["queues"]["default"]
    assert backlog["size"] == CAMPAIGN and backlog["latency_s"] >= fast.completion_s
    assert fast.peak_default_latency_s > fast.completion_s

    shop_world.reset()
    slow = run_campaign(shop_world, NEWSLETTER_ON_ONE_QUEUE)
    # The same campaign on one queue: the order pays the whole campaign's time on top of its own.
    assert slow.completion_s - fast.completion_s == pytest.approx(slow.waited_behind_s)
    assert slow.completion_s > fast.completion_s
