"""Lesson 9, its last question: what if the whole job runs twice? At-least-once delivery redelivers the
split job and it charges again; the idempotent stage shrugs it off."""

from __future__ import annotations

from scenarios.shop.scenarios import IDEMPOTENT, SPLIT


def test_redelivery_breaks_the_split_stage(explored):
    report = explored(SPLIT)
    assert report.found(fault="redeliver", text="charged 2 times"), report.to_text()


def test_redelivery_is_harmless_to_the_idempotent_stage(explored):
    assert not explored(IDEMPOTENT).found(fault="redeliver")
