"""Server-side behaviours and fault schedules: every fault kind in both phases, every selector."""

from __future__ import annotations

import httpx
import pytest
from fake_api_helpers import CHARGE, EMAIL, FULFILL, NOTIFY, Api

from fake_services import FakeServices, FaultRule, ServicesTransport
from fake_services.clients import PaymentsClient, TransientServiceError
from harness.clock import VirtualClock

MAIN_CALLS = {
    "payments": ("POST", "/payments/charge", CHARGE, "charge", 201),
    "email": ("POST", "/email/send", EMAIL, "send", 202),
    "fulfillment": ("PUT", "/fulfillment/request", FULFILL, "request", 202),
    "error-catcher": ("PUT", "/error-catcher/notification", NOTIFY, "notify", 202),
    "chat": ("POST", "/chat/webhook", {"text": "hi"}, "post", 200),
}


def charge(api: Api, **extra: object) -> httpx.Response:
    return api.http.post("/payments/charge", json={**CHARGE, **extra})


def statuses(api: Api, n: int) -> list[int]:
    return [charge(api).status_code for _ in range(n)]


def test_behaviours_are_listed_and_set_over_http(api: Api) -> None:
    listed = api.http.get("/behaviors").json()
    assert set(listed) == {"payments", "email", "fulfillment", "error-catcher", "chat", "stripe"}
    assert listed["payments"]["crash"] is False
    changed = api.http.put("/behaviors/payments", json={"crash": True})
    assert changed.status_code == 200 and changed.json()["crash"] is True
    assert api.services.behaviours["payments"].crash is True
    assert api.http.get("/behaviors/payments").json()["crash"] is True
    assert charge(api).status_code in (503, 504)
    assert api.services.payments.records() == []
    api.http.put("/behaviors/payments", json={"crash": False})
    assert charge(api).status_code == 201


def test_behaviour_set_in_python_is_seen_over_http(api: Api) -> None:
    api.services.behaviours["error_catcher"].throttle = True
    assert api.http.get("/behaviors/error-catcher").json()["throttle"] is True
    assert api.http.put("/error-catcher/notification", json=NOTIFY).status_code == 429


@pytest.mark.parametrize(
    "body", [{"crash": "yes"}, {"sleep": -1}, {"crash_status": 418}, {"explode": True}, [1, 2]]
)
def test_a_bad_behaviour_body_gets_422_and_changes_nothing(api: Api, body: object) -> None:
    response = api.http.put("/behaviors/payments", json=body)
    assert response.status_code == 422 and response.json()["detail"]
    assert api.services.behaviours["payments"].to_dict() == FakeServices().behaviours["payments"].to_dict()


def test_unknown_service_gets_404(api: Api) -> None:
    assert api.http.get("/behaviors/refunds").status_code == 404
    assert api.http.put("/behaviors/refunds", json={"crash": True}).status_code == 404
    assert api.http.post("/behaviors/refunds/faults", json={"fault": "503"}).status_code == 404


@pytest.mark.parametrize("service", ["*", "+"])
def test_a_service_named_like_a_route_pattern_is_unknown_on_every_service_route(api: Api, service: str) -> None:
    """The route table's own placeholders, sent as a service's name, are no service: every method of every
    route that names a service answers 404 and changes nothing, never 500."""
    before = api.http.get("/behaviors").json()
    routes = api.services.front.control._table
    patterns = [key for key in routes if len(key) >= 2 and key[1] == "*"]
    assert patterns, "the control API's service routes were not found"
    for key in patterns:
        path = "/" + "/".join(service if n == 1 else "r1" if part == "+" else part for n, part in enumerate(key))
        for method in routes[key]:
            response = api.http.request(method, path, json={"retention_s": 5, "crash": True, "fault": "503"})
            assert response.status_code == 404, (method, path, response.status_code, response.text[:200])
    assert api.http.get("/behaviors").json() == before


def test_throttle_behaviour_sends_retry_after_when_configured(api: Api) -> None:
    api.http.put("/behaviors/payments", json={"throttle": True, "retry_after": 7})
    response = charge(api)
    assert response.status_code == 429 and response.headers["retry-after"] == "7"


def test_crash_status_makes_the_crash_status_fixed(api: Api) -> None:
    api.http.put("/behaviors/payments", json={"crash": True, "crash_status": 502})
    assert set(statuses(api, 5)) == {502}


def test_crash_behaviour_on_email_sends_then_fails(api: Api) -> None:
    api.http.put("/behaviors/email", json={"crash": True})
    assert api.http.post("/email/send", json=EMAIL).status_code == 503
    [entry] = [e for e in api.services.journal.entries() if e.operation == "send"]
    assert (entry.fault, entry.phase, entry.effect, entry.status) == ("503", "after", True, 503)


def test_ui_pages_and_control_api_ignore_behaviours(api: Api) -> None:
    api.http.put("/behaviors/payments", json={"crash": True, "throttle": True})
    assert api.http.get("/payments/ui").status_code == 200
    assert api.http.get("/journal").status_code == 200


def test_slow_behaviour_advances_a_virtual_clock_and_returns_at_once() -> None:
    clock = VirtualClock()
    services = FakeServices(clock=clock)
    services.behaviours["payments"].sleep = 20
    with httpx.Client(transport=ServicesTransport(services), base_url="http://fake") as http:
        start = clock.time()
        assert http.post("/payments/charge", json=CHARGE).status_code == 201
        assert clock.time() - start == 20
        assert http.post("/payments/charge", json=CHARGE, headers={"X-Be-Slow": "3"}).status_code == 201
        assert clock.time() - start == 23  # the header overrides the standing sleep
        http.get("/payments/ui")
        assert clock.time() - start == 23


def test_slow_behaviour_on_a_socket_still_answers(api: Api) -> None:
    api.http.put("/behaviors/payments", json={"sleep": 0.05})
    assert charge(api).status_code == 201


def test_fault_rules_are_scheduled_listed_and_cleared_over_http(api: Api) -> None:
    rule_body = {"fault": "503", "nth": 2, "operation": "charge"}
    created = api.http.post("/behaviors/payments/faults", json=rule_body)
    assert created.status_code == 201
    rule = created.json()
    assert rule["id"] and rule["fault"] == "503" and rule["nth"] == 2
    assert statuses(api, 3) == [201, 503, 201]
    [listed] = api.http.get("/behaviors/payments/faults").json()["faults"]
    assert (listed["id"], listed["seen"], listed["fired"]) == (rule["id"], 3, 1)
    assert api.http.delete("/behaviors/payments/faults").status_code == 200
    assert api.http.get("/behaviors/payments/faults").json() == {"faults": []}


@pytest.mark.parametrize(
    "body",
    [{"fault": "418"}, {"fault": "503", "phase": "during"}, {"fault": "503", "next": 1, "nth": 1},
     {"fault": "503", "next": 0}, {"fault": "503", "probability": 2}, {"phase": "after"},
     {"fault": "503", "colour": "red"}, {"fault": "503", "retry_after": "soon"}, "503"],
)
def test_a_bad_fault_rule_gets_422(api: Api, body: object) -> None:
    response = api.http.post("/behaviors/payments/faults", json=body)
    assert response.status_code == 422 and response.json()["detail"]
    assert api.services.faults("payments") == []


@pytest.mark.parametrize(
    ("selector", "expected"),
    [({"next": 2}, [503, 503, 201, 201, 201, 201]),
     ({"nth": 3}, [201, 201, 503, 201, 201, 201]),
     ({"every": 2}, [201, 503, 201, 503, 201, 503]),
     ({}, [503] * 6)],
)
def test_selectors_pick_calls(api: Api, selector: dict, expected: list[int]) -> None:
    api.services.schedule("payments", FaultRule(fault="503", **selector))
    assert statuses(api, 6) == expected


def test_counting_starts_when_the_rule_is_scheduled(api: Api) -> None:
    statuses(api, 3)
    api.services.schedule("payments", FaultRule(fault="500", nth=1))
    assert statuses(api, 2) == [500, 201]


def test_an_operation_rule_counts_only_that_operation(api: Api) -> None:
    api.services.schedule("email", FaultRule(fault="503", nth=2, operation="send"))
    search = {"email": EMAIL["to"], "template_id": EMAIL["template_id"]}
    codes = []
    for _ in range(3):
        assert api.http.get("/email/emails", params=search).status_code == 200
        codes.append(api.http.post("/email/send", json=EMAIL).status_code)
    assert codes == [202, 503, 202]


def test_probability_is_seeded_and_repeatable() -> None:
    def pattern(seed: int) -> list[int]:
        services = FakeServices(seed=seed)
        services.schedule("payments", FaultRule(fault="503", probability=0.5))
        with httpx.Client(transport=ServicesTransport(services), base_url="http://fake") as http:
            return [http.post("/payments/charge", json=CHARGE).status_code for _ in range(40)]

    first = pattern(3)
    assert first == pattern(3)
    assert {201, 503} == set(first)
    assert first != pattern(4)
    # unseeded services draw afresh each run (two equal patterns of 40 coin flips: 1 in 2**40)
    assert pattern(None) != pattern(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("fault", ["500", "502", "503", "504", "429"])
@pytest.mark.parametrize("phase", ["before", "after"])
def test_http_faults_in_each_phase(api: Api, fault: str, phase: str) -> None:
    api.services.schedule("payments", FaultRule(fault=fault, phase=phase, nth=1, retry_after=2))
    response = charge(api)
    assert response.status_code == int(fault)
    assert response.json()["status"] == int(fault)
    if fault == "429":
        assert response.headers["retry-after"] == "2"
    assert len(api.services.payments.records()) == (1 if phase == "after" else 0)
    [entry] = api.services.journal.entries()
    seen = (entry.fault, entry.phase, entry.effect, entry.status)
    assert seen == (fault, phase, phase == "after", int(fault))


@pytest.mark.parametrize("phase", ["before", "after"])
def test_malformed_answers_2xx_with_a_body_that_is_not_json(api: Api, phase: str) -> None:
    api.services.schedule("payments", FaultRule(fault="malformed", phase=phase, nth=1))
    response = charge(api)
    assert response.status_code == 201
    with pytest.raises(ValueError):
        response.json()
    assert len(api.services.payments.records()) == (1 if phase == "after" else 0)


@pytest.mark.parametrize("fault", ["timeout", "drop"])
@pytest.mark.parametrize("phase", ["before", "after"])
def test_timeouts_and_drops_reach_the_client_as_transient_errors(api: Api, fault: str, phase: str) -> None:
    api.services.schedule("payments", FaultRule(fault=fault, phase=phase, nth=1, timeout_s=1.0))
    client = PaymentsClient(api.base_url, http=api.http, timeout=0.3)
    with pytest.raises(TransientServiceError) as caught:
        client.charge(customer_id=1, payment_method_id="pm", amount_cents=100)
    assert caught.value.status is None
    assert len(api.services.payments.records()) == (1 if phase == "after" else 0)
    [entry] = api.services.journal.entries()
    assert (entry.fault, entry.phase, entry.status, entry.effect) == (fault, phase, None, phase == "after")
    assert client.charge(customer_id=1, payment_method_id="pm", amount_cents=100).status == "success"


@pytest.mark.parametrize(("fault", "phase", "error"), [
    ("timeout", "before", httpx.ReadTimeout), ("timeout", "after", httpx.ReadTimeout),
    ("drop", "before", httpx.ConnectError), ("drop", "after", httpx.RemoteProtocolError),
])
def test_in_process_faults_raise_what_httpx_raises(fault: str, phase: str, error: type) -> None:
    services = FakeServices()
    services.schedule("payments", FaultRule(fault=fault, phase=phase, nth=1))
    with httpx.Client(transport=ServicesTransport(services), base_url="http://fake") as http, \
            pytest.raises(error):
        http.post("/payments/charge", json=CHARGE)


def test_a_drop_on_a_socket_closes_the_connection_without_a_response(socket_server) -> None:
    services, url = socket_server
    services.reset()
    services.schedule("payments", FaultRule(fault="drop", nth=1))
    with httpx.Client(base_url=url) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            http.post("/payments/charge", json=CHARGE)
        assert http.post("/payments/charge", json=CHARGE).status_code == 201
    services.reset()


@pytest.mark.parametrize("service", sorted(MAIN_CALLS))
def test_after_phase_faults_work_for_every_service(api: Api, service: str) -> None:
    method, path, body, operation, ok = MAIN_CALLS[service]
    api.services.schedule(service, FaultRule(fault="503", phase="after", nth=1, operation=operation))
    assert api.http.request(method, path, json=body).status_code == 503
    assert api.http.request(method, path, json=body).status_code == ok
    assert len(api.services.services[service].records()) == 2
    effects = [(e.service, e.fault) for e in api.services.effects()]
    assert effects == [(service, "503"), (service, None)]


def test_a_header_fault_wins_but_the_schedule_still_counts(api: Api) -> None:
    api.services.schedule("payments", FaultRule(fault="500", nth=1))
    assert charge_with(api, {"X-Throttle": "true"}) == 429
    assert charge(api).status_code == 201


def charge_with(api: Api, headers: dict[str, str]) -> int:
    return api.http.post("/payments/charge", json=CHARGE, headers=headers).status_code


def test_clear_faults_in_python_removes_every_services_rules(api: Api) -> None:
    for name in MAIN_CALLS:
        api.services.schedule(name, FaultRule(fault="503"))
    api.services.clear_faults("payments")
    assert charge(api).status_code == 201
    assert api.http.post("/chat/webhook", json={"text": "x"}).status_code == 503
    api.services.clear_faults()
    assert all(api.services.faults(name) == [] for name in MAIN_CALLS)
