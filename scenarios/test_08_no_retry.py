"""Lesson 8: a job that cannot be made idempotent is never retried: its first failure sends it to the dead
set and the death handler tells a person, once. Whatever fails, it never posts twice."""

from __future__ import annotations

from scenarios.shop.scenarios import NO_RETRY


def test_the_job_that_must_not_retry_dies_at_once_and_alerts(explored):
    report = explored(NO_RETRY, routing=True)
    report.assert_safe()
    for row in report.routing:
        assert not row["retried"] and row["death_handler"] == 1, row
