"""Lesson 5: the three-step job charges the customer again on every retry after the charge went through;
the harness finds it at the exact point. Split into three chained jobs, an email failure no longer charges
twice: each job retries alone."""

from __future__ import annotations

from scenarios.shop.scenarios import NAIVE, SPLIT


def test_the_naive_job_double_charges_when_email_fails(explored):
    report = explored(NAIVE)
    report.assert_unsafe()
    email_failures = [
        u for u in report.found(service="email", text="charged 2 times") if u.plan[0].point.phase == "before"
    ]
    assert email_failures, report.to_text()
    story = email_failures[0].story
    assert "email.send" in story and "attempt 2 of complete_order" in story
    crash = [u for u in report.found(fault="crash", text="charged 2 times")]
    assert any("just after `payments.charge` returned" in u.story for u in crash)


def test_splitting_the_job_stops_email_failures_from_charging_again(explored):
    report = explored(SPLIT)
    assert not report.found(service="email", text="charged 2 times"), report.to_text()
    assert not report.found(service="fulfillment", text="charged 2 times"), report.to_text()
