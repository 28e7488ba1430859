"""Lesson 15: the same job delivered twice at the same moment. At-least-once engines do it (a visibility
timeout that expires while the first worker is busy, an orphaned job recovered while it still runs). The
idempotent stage's email job searches before it sends: safe under every retry, because a retry runs
after the failed attempt. Two deliveries at once both search before either sends, and both send. A Redis
lock per order around the search and the send turns the second delivery away; the engine runs it again
later and it finds the email recorded."""

from __future__ import annotations

import json

from harness.explore.concurrent import Interleavings, explore_concurrent
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
