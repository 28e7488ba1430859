"""Lesson 14: an outage longer than an idempotency key's life. A job that sends a key with its charge and
records the charge only at the end is safe under every ordinary fault: a retry sends the same key and the
payments service answers with the first charge. But the provider keeps a key for 24 hours, and the job's
retries go on for weeks. Fulfillment down for 30 hours makes the retry after the key expired a new charge.
The fix records the charge on the order before anything else can fail, so a retry never charges again."""

from __future__ import annotations

from dataclasses import replace

from harness.explore import Explorer
from scenarios.shop.scenarios import KEYED_ONLY, KEYED_RECORDED


def test_trusting_the_key_alone_is_safe_under_every_ordinary_fault(explored):
    report = explored(replace(KEYED_ONLY, name="shop.keyed_only.no_outage", outages=()))
    assert report.safe, report.to_text()


def test_an_outage_that_outlives_the_key_charges_twice(explored):
    report = explored(KEYED_ONLY)
    found = report.found(fault="outage", service="fulfillment", text="order 1 was charged 2 times")
    assert found, report.to_text()
    story = found[0].story
    assert story.startswith("fulfillment was down for 30 h (every call answered 503)"), story
    assert "the key had expired: payments keeps an Idempotency-Key 24 h" in story, story
    assert "so payments processed it as a new request" in story, story
    # An outage of payments itself makes no second charge: nothing was charged while it lasted.
    assert not report.found(fault="outage", service="payments")


OUTAGE = '[{"attempt":1,"fault":"outage","point":{"kind":"outage","service":"fulfillment","for_s":108000}}]'


def replay(scenario, engine_name):
    """The outage plan replayed on `scenario`: its result, and the charges the payments service holds."""
    explorer = Explorer(scenario, engine=engine_name)
    try:
        result = explorer.replay(OUTAGE)
        return result, explorer.world.services.payments.records()
    finally:
        explorer.close()


def test_the_second_charge_comes_after_the_key_expired(engine_name):
    result, charges = replay(KEYED_ONLY, engine_name)
    assert len(charges) == 2, charges
    assert charges[1]["time"] - charges[0]["time"] >= 24 * 3600
    [expiry] = [e for execution in result.executions for e in execution.keys_expired]
    assert (expiry.service, expiry.key) == ("payments", "charge-order-1")
    # Within the key's life the same outage is harmless: a provider that keeps keys for a week.
    kept_a_week = replace(KEYED_ONLY, name="shop.keyed_only.week", key_retention={"payments": 7 * 86400})
    result, charges = replay(kept_a_week, engine_name)
    assert result.violations == [] and len(charges) == 1


def test_recording_the_charge_first_survives_any_outage(explored, engine_name):
    report = explored(KEYED_RECORDED)
    assert report.safe, report.to_text()
    result, charges = replay(KEYED_RECORDED, engine_name)
    assert result.violations == [] and len(charges) == 1
    assert len(result.executions) > 14  # the retries ran past the key's life, and skipped the charge
