"""Lessons 7 and 9: with idempotency keys on payments and fulfillment and a search before emailing, every
call fault and a crash at every line of every stage leaves one charge, one email and one shipment. The
naive and split stages, explored the same way, are unsafe."""

from __future__ import annotations

from scenarios.shop.scenarios import IDEMPOTENT, NAIVE, SPLIT


def test_the_idempotent_stage_is_safe_under_every_fault(explored):
    report = explored(IDEMPOTENT)
    report.assert_safe()
    assert report.points["line"] > 50 and report.points["call"] >= 6


def test_line_by_line_verdicts_of_each_stage(explored):
    verdicts = {s.name: explored(s).verdict for s in (NAIVE, SPLIT, IDEMPOTENT)}
    assert verdicts == {"shop.naive": "unsafe", "shop.split": "unsafe", "shop.idempotent": "safe"}
    naive = explored(NAIVE)
    assert any(not safe for safe in naive.lines.values()) and any(naive.lines.values())
