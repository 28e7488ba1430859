"""Outages on the services' clock (fault rules with a window) and key retention per service, in Python
and over the control API."""

from __future__ import annotations

import httpx
import pytest
from fake_api_helpers import CHARGE, FULFILL, Api

from fake_services import FakeServices, FaultRule, ServicesTransport
from harness.clock import VirtualClock


@pytest.fixture
def clocked() -> tuple[FakeServices, VirtualClock, httpx.Client]:
    clock = VirtualClock()
    services = FakeServices(clock=clock)
    return services, clock, httpx.Client(transport=ServicesTransport(services), base_url="http://fake")


def charge(http: httpx.Client, key: str | None = None) -> httpx.Response:
    return http.post("/payments/charge", json=CHARGE, headers={"Idempotency-Key": key} if key else {})


def test_an_outage_fails_every_call_inside_its_window_and_none_outside(clocked) -> None:
    services, clock, http = clocked
    start = clock.time()
    services.schedule("payments", FaultRule(fault="503", after_s=60, for_s=3600))
    assert charge(http).status_code == 201  # the window opens a minute from now
    clock.advance(60)
    assert charge(http).status_code == 503
    clock.advance(3599)
    assert charge(http).status_code == 503
    clock.advance(1)
    assert charge(http).status_code == 201
    [rule] = services.faults("payments")
    assert (rule["seen"], rule["fired"]) == (2, 2)  # calls outside the window are not counted
    assert (rule["opens"], rule["closes"]) == (start + 60, start + 60 + 3600)


def test_an_outage_of_one_operation_leaves_the_others_alone(clocked) -> None:
    services, _, http = clocked
    services.schedule("fulfillment", FaultRule(fault="503", for_s=86400, operation="request"))
    assert http.put("/fulfillment/request", json=FULFILL).status_code == 503
    assert http.get("/fulfillment/status").status_code != 503


def test_a_window_combines_with_a_selector(clocked) -> None:
    services, clock, http = clocked
    services.schedule("payments", FaultRule(fault="429", every=2, for_s=100))
    assert [charge(http).status_code for _ in range(4)] == [201, 429, 201, 429]
    clock.advance(100)
    assert [charge(http).status_code for _ in range(2)] == [201, 201]


@pytest.mark.parametrize("fields, message", [
    ({"fault": "503", "for_s": -1}, "for_s must be a number of seconds from 0 to"),
    ({"fault": "503", "for_s": 91 * 86400}, "for_s must be a number of seconds from 0 to"),
    ({"fault": "503", "after_s": float("nan")}, "after_s must be a number of seconds"),
    ({"fault": "503", "for_s": "1d"}, "for_s must be a number of seconds"),
])
def test_bad_windows_are_refused_with_the_field_named(fields, message) -> None:
    with pytest.raises(ValueError, match=message):
        FaultRule.from_dict(fields)


def test_retention_is_per_service_and_a_reset_restores_the_default(clocked) -> None:
    services, clock, http = clocked
    services.set_key_retention("payments", 3600)
    assert services.key_retention("payments") == 3600
    assert services.key_retention("fulfillment") == 24 * 3600
    first = charge(http, "k").json()["charge_id"]
    clock.advance(3600)
    assert charge(http, "k").json()["charge_id"] != first
    [expiry] = services.idempotency.expired
    assert (expiry.service, expiry.key, expiry.age_s, expiry.retention_s) == ("payments", "k", 3600, 3600)
    services.reset()
    assert services.key_retention("payments") == 24 * 3600 and services.idempotency.expired == []
    with pytest.raises(ValueError, match="a key retention is a number of seconds above 0"):
        services.set_key_retention("payments", 0)
    with pytest.raises(KeyError):
        services.set_key_retention("nowhere", 60)


def test_a_key_still_in_flight_when_it_expires_is_not_told_as_expired() -> None:
    store = FakeServices().idempotency
    assert store.claim("payments", "k", "print", 0.0) is None  # claimed, never completed
    assert store.claim("payments", "k", "print", 25 * 3600.0) is None
    assert store.expired == []


def test_the_control_api_reads_and_sets_retention_and_lists_expired_keys(api: Api) -> None:
    http = api.http
    assert http.get("/behaviors/payments/keys").json() == {"service": "payments", "retention_s": 86400.0,
                                                           "expired": []}
    changed = http.put("/behaviors/payments/keys", json={"retention_s": 600})
    assert changed.status_code == 200 and changed.json()["retention_s"] == 600
    assert api.services.key_retention("payments") == 600
    for bad in ({"retention_s": -5}, {"retention_s": True}, {"keep": 5}, {"retention_s": 5, "x": 1}):
        refused = http.put("/behaviors/payments/keys", json=bad)
        assert refused.status_code == 422, bad
    assert api.services.key_retention("payments") == 600  # a refused change loses nothing
    assert http.put("/behaviors/payments/keys", json={"retention_s": None}).json()["retention_s"] == 86400
    assert http.get("/behaviors/nowhere/keys").status_code == 404


def test_an_outage_scheduled_over_http_lists_its_window(api: Api) -> None:
    created = api.http.post("/behaviors/email/faults", json={"fault": "503", "for_s": 7200})
    assert created.status_code == 201, created.text
    [listed] = api.http.get("/behaviors/email/faults").json()["faults"]
    assert listed["for_s"] == 7200 and listed["closes"] - listed["opens"] == 7200
