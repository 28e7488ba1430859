"""Lesson 6: the email service sends the email and then answers 503, so every retry of the split email
job sends another. Searching for the confirmation before sending (the idempotent stage) fixes it."""

from __future__ import annotations

from scenarios.shop.scenarios import IDEMPOTENT, SPLIT


def test_sent_then_503_duplicates_the_email(explored):
    report = explored(SPLIT)
    after = [u for u in report.found(fault="503", service="email") if u.plan[0].point.phase == "after"]
    assert after and any("emailed 2 times" in v for v in after[0].violations), report.to_text()


def test_search_before_send_keeps_one_email(explored):
    report = explored(IDEMPOTENT)
    assert not report.found(service="email"), report.to_text()
