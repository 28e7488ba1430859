"""Outages on virtual time, as the explorer sees them: the plan step and its JSON form, the candidates a
scenario's `outages` adds, key retention per scenario, and the story of a key that expired."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from fake_services.clients import EmailClient, PaymentsClient
from harness import job
from harness.errors import ConfigurationError
from harness.explore import Explorer, Scenario, explore
from harness.explore.stories import _runs
from harness.injection.plans import Outage, as_plan, plan_to_json, span

STATE: dict[str, Any] = {}


def configure(world: Any) -> None:
    STATE["payments"] = PaymentsClient(world.base_url, http=world.http)
    STATE["email"] = EmailClient(world.base_url, http=world.http)


def setup(world: Any) -> list[int]:
    return [7]


@job(retry=10)
def charge_then_receipt(order_id: int) -> None:
    STATE["payments"].charge(customer_id=1, payment_method_id=2, amount_cents=500,
                             metadata={"order_id": order_id}, idempotency_key=f"charge-{order_id}")
    STATE["email"].send(to="a@example.com", template_id="receipt", template_data={"order_id": order_id})


def charged_once(world: Any) -> str | None:
    count = len(world.services.payments.records())
    return None if count == 1 else f"charged {count} times"


#: Payments keeps keys an hour; the outages last two.
KEYED = Scenario(name="outages.keyed", job=charge_then_receipt, setup=setup, configure=configure,
                 targets=[__name__], invariants=[charged_once], outages=[7200],
                 key_retention={"payments": 3600}, compare_to_clean_run=False)


def test_an_email_outage_longer_than_the_key_charges_twice_and_the_story_says_why():
    report = explore(KEYED)
    [found] = report.found(fault="outage", service="email")
    assert found.violations == ["charged 3 times"]  # the key expired twice in two hours
    assert found.story.startswith("email was down for 2 h (every call answered 503) from the start of attempt 1")
    assert "payments keeps an Idempotency-Key 60 min, this retry sent 'charge-7'" in found.story
    assert json.loads(found.replay.split("--replay ", 1)[1].strip("'"))[0]["point"] == {
        "kind": "outage", "service": "email", "for_s": 7200.0}
    assert not report.found(fault="outage", service="payments")


def test_the_same_outage_within_the_keys_life_is_harmless():
    kept = replace(KEYED, name="outages.kept_a_day", key_retention={})
    assert explore(kept).safe


def test_no_outage_is_explored_unless_the_scenario_asks():
    report = explore(replace(KEYED, name="outages.none", outages=()))
    assert report.safe and not report.found(fault="outage")


def test_the_report_is_the_same_for_the_same_seed():
    first, second = explore(KEYED, seed=3), explore(KEYED, seed=3)
    assert [u.story for u in first.unsafe] == [u.story for u in second.unsafe]
    assert [plan_to_json(u.plan) for u in first.unsafe] == [plan_to_json(u.plan) for u in second.unsafe]


def test_an_outage_step_round_trips_through_json():
    plan = (Outage(2, "fulfillment", 93600.0, "request"),)
    text = plan_to_json(plan)
    assert as_plan(text) == plan
    assert as_plan(json.loads(text)) == plan
    assert plan[0].describe() == "fulfillment.request down for 26 h"


@pytest.mark.parametrize("point, message", [
    ({"kind": "outage", "service": "email"}, "for_s is a number of seconds above 0"),
    ({"kind": "outage", "service": "email", "for_s": 0}, "for_s is a number of seconds above 0"),
    ({"kind": "outage", "service": "email", "for_s": True}, "for_s is a number of seconds above 0"),
    ({"kind": "outage", "for_s": 60}, "service must be a non-empty string"),
    ({"kind": "outage", "service": "email", "for_s": 60, "status": 500}, "takes service, for_s and operation"),
    ({"kind": "outage", "service": "email", "for_s": 60, "operation": 3}, "operation is an operation name"),
])
def test_bad_outage_steps_are_refused_with_what_is_wrong(point, message):
    with pytest.raises(ConfigurationError, match=message):
        as_plan([{"attempt": 1, "point": point, "fault": "outage"}])
    with pytest.raises(ConfigurationError, match="an outage step's fault is 'outage'"):
        as_plan([{"attempt": 1, "point": {"kind": "outage", "service": "email", "for_s": 60}, "fault": "503"}])


def test_an_outage_of_a_service_that_does_not_exist_is_a_clear_error():
    explorer = Explorer(KEYED)
    try:
        with pytest.raises(ConfigurationError, match="an outage names the service 'emial'"):
            explorer.replay('[{"attempt":1,"fault":"outage","point":{"kind":"outage","service":"emial","for_s":60}}]')
    finally:
        explorer.close()


@pytest.mark.parametrize("options, message", [
    ({"outages": [0]}, "an outage lasts more than 0"),
    ({"outages": ["2h"]}, "an outage lasts more than 0"),
    ({"outages": 7200}, "outages is a list of durations"),
    ({"key_retention": [("payments", 60)]}, "key_retention maps service names to seconds"),
])
def test_bad_scenario_options_are_refused(options, message):
    with pytest.raises(ConfigurationError, match=message):
        replace(KEYED, **options)


def test_a_retention_for_an_unknown_service_is_refused_when_the_run_starts():
    with pytest.raises(ConfigurationError, match="key_retention for 'paymnts'"):
        explore(replace(KEYED, name="outages.typo", key_retention={"paymnts": 60}))


def test_spans_read_as_people_say_them():
    assert [span(s) for s in (45, 1200, 7200, 93600, 21 * 86400)] == ["45 s", "20 min", "2 h", "26 h", "21 days"]


def test_runs_of_plain_failures_are_told_once():
    parts = ["x was down", *(f"attempt {n} of job failed with E" for n in range(1, 5)),
             "attempt 5 of job failed with F", "attempt 6 of job ran to the end"]
    assert _runs(parts) == ["x was down", "attempts 1 to 4 of job failed with E", "attempt 5 of job failed with F",
                            "attempt 6 of job ran to the end"]
    assert _runs(["attempt 1 of job failed with E", "attempt 2 of job failed with E"]) == [
        "attempt 1 of job failed with E", "attempt 2 of job failed with E"]
