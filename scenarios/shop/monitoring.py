"""Watching the shop in production: business outcomes, the retry set, and the engine's numbers.

Job metrics say whether the engine is busy; only the orders table says whether customers got what they
paid for. `unfinished_orders` finds orders stuck before a step after a grace period, `RetryAlarm` posts
to the chat webhook once each time the retry set crosses its threshold, and `stats` is the JSON view an
uptime checker or a dashboard polls (lesson 11).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select

from scenarios.shop import app, db

if TYPE_CHECKING:
    from harness.engines.base import Engine

__all__ = ["OPS_CHANNEL", "QUEUES", "RetryAlarm", "stats", "stats_json", "unfinished_orders"]

#: The shop's queues in priority order: order completion first.
QUEUES = ("high", "default")
OPS_CHANNEL = "#ops"


def unfinished_orders(*, grace_s: float = 15 * 60, now: float | None = None) -> dict[str, list[int]]:
    """Ids of orders older than `grace_s` that were not charged, not emailed or not fulfilled.

    A declined order is finished: nothing more is owed to that customer.
    """
    now = app.now() if now is None else now
    o = db.orders.c
    overdue = and_(o.created_at <= now - grace_s, o.status != "declined")
    checks = {
        "not_charged": o.charge_id.is_(None),
        "not_emailed": and_(o.charge_id.is_not(None), o.email_id.is_(None)),
        "not_fulfilled": and_(o.charge_id.is_not(None), o.fulfillment_request_id.is_(None)),
    }
    with db.database().connect() as conn:
        return {
            name: list(conn.scalars(select(o.id).where(overdue, condition).order_by(o.id)))
            for name, condition in checks.items()
        }


class RetryAlarm:
    """Posts to the chat webhook when the retry set grows past `threshold`: once per crossing.

    Run `check` on a schedule. An alarm that fires on every check trains people to ignore it, so it
    stays quiet until the retry set has come back to the threshold or below and crossed it again.
    """

    def __init__(self, threshold: int = 50, *, channel: str = OPS_CHANNEL) -> None:
        self.threshold = threshold
        self.channel = channel
        self.raised = False

    def check(self, engine: Engine) -> bool:
        """Look at the retry set; return True when this check posted an alert."""
        size = len(engine.retries())
        if size <= self.threshold:
            self.raised = False
            return False
        if self.raised:
            return False
        app.chat().post(
            text=f"{size} jobs are waiting to be retried (alert above {self.threshold}); "
            "check the error catcher for what is failing",
            channel=self.channel,
        )
        # Only after the post went out: a failed post is tried again at the next check.
        self.raised = True
        return True


def stats(engine: Engine, *, now: float | None = None) -> dict[str, Any]:
    """Sidekiq's dashboard numbers: enqueued, per-queue size and latency, scheduled, retries, dead."""
    now = engine.clock.time() if now is None else now
    queued = engine.queued()
    names = list(QUEUES) + sorted({r.queue for r in queued} - set(QUEUES))
    queues: dict[str, dict[str, float]] = {}
    for name in names:
        waiting = [r for r in queued if r.queue == name]
        queues[name] = {"size": len(waiting), "latency_s": _latency(engine, name, waiting, now)}
    return {
        "enqueued": len(queued),
        "queues": queues,
        "scheduled": len(engine.scheduled()),
        "retries": len(engine.retries()),
        "dead": len(engine.dead()),
        "processed": engine.stats.processed,
        "failed": engine.stats.failed,
    }


def _latency(engine: Engine, queue: str, waiting: list[Any], now: float) -> float:
    """How long the oldest job of `queue` has waited, in seconds (0 when the queue is empty)."""
    own = getattr(engine, "queue_latency", None)
    if callable(own):
        return float(own(queue))
    if not waiting:
        return 0.0
    return max(0.0, now - min(r.enqueued_at for r in waiting))


def stats_json(engine: Engine) -> str:
    return json.dumps(stats(engine), sort_keys=True)
