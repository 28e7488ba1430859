"""Lesson 13: a broker that forgets. A Redis restarted without persistence (or flushed, or failed over to
an empty replica) drops every queued, scheduled and retrying job, and nothing raises: the idempotent
stage, safe under every retry, leaves an order charged and never shipped, and error reporting stays
silent. Only a monitor of business outcomes (every order completed within an hour) notices; the fix is a
reconciler on a timer outside the broker that pushes stuck orders on."""

from __future__ import annotations

from harness.explore import Explorer
from scenarios.shop.scenarios import FORGETFUL_BROKER, FORGETFUL_BROKER_RECONCILED, IDEMPOTENT


def test_a_forgetful_broker_stops_an_order_halfway_and_only_the_monitor_notices(explored):
    report = explored(FORGETFUL_BROKER)
    lost = report.found(fault="forget", text="order 1 never completed")
    assert lost, report.to_text()
    assert all("nothing was reported to the error catcher" in " ".join(u.violations) for u in lost)
    assert any("the broker forgot everything it held, 1 job (send_confirmation_email)" in u.story for u in lost)


def test_error_reporting_sees_nothing_of_the_loss(engine_name):
    explorer = Explorer(FORGETFUL_BROKER, engine=engine_name)
    try:
        result = explorer.replay('[{"attempt":1,"fault":"forget","point":{"kind":"broker"}}]')
        assert any("never completed" in v for v in result.violations)
        assert explorer.world.services.error_catcher.records() == []
        assert [e.detail for e in explorer.world.engine.events if e.kind == "lost"] == [{"cause": "broker"}]
    finally:
        explorer.close()


def test_a_reconciler_on_a_timer_completes_every_order(explored):
    report = explored(FORGETFUL_BROKER_RECONCILED)
    assert report.safe, report.to_text()


def test_the_stages_without_the_option_never_lose_their_broker(explored):
    assert not explored(IDEMPOTENT).found(fault="forget")
