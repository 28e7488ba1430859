"""Lesson 8: a job that cannot be made idempotent is never retried: its first failure sends it to the dead
set and the death handler tells a person, once. Whatever it raises, it never posts twice.

A worker that dies mid-job is another matter, and `retry=0` does not cover it: an engine that runs the
dead worker's job again (Sidekiq Pro's super_fetch, which `sim` models; Dramatiq's redelivery; Celery with
`acks_late`) does so whatever the retry option says, so a death between the post and its record posts
twice. RQ's cleanup treats the abandoned job as a failure: with no retries left it is failed, and the
death handler tells a person.
"""

from __future__ import annotations

from harness.injection.plans import FaultStep
from scenarios.shop.scenarios import NO_RETRY

#: Engines that run a crashed worker's job again whatever its retry option says.
REDELIVER = {"sim", "dramatiq", "celery"}


def test_the_job_that_must_not_retry_dies_at_once_and_alerts(explored):
    report = explored(NO_RETRY, routing=True)
    for row in report.routing:
        assert not row["retried"] and row["death_handler"] == 1 and row["ok"], row
    # No failure the job raises (a service's 5xx, 429, timeout or lost answer, a bug) is unsafe.
    for unsafe in report.unsafe:
        assert all(isinstance(s, FaultStep) and s.fault == "crash" for s in unsafe.plan), unsafe.story


def test_a_worker_that_dies_after_the_post_posts_twice_where_the_engine_redelivers(explored, engine_name):
    report = explored(NO_RETRY, routing=True)
    twice = report.found(fault="crash", text="announced 2 times")
    if engine_name in REDELIVER:
        assert twice, report.to_text()
        assert all("just after `chat.post` returned" in u.story for u in twice)
    else:
        assert report.safe, report.to_text()
