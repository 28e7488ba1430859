"""Idempotency-Key header semantics (IETF draft) on payments and fulfillment, with real threads."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fake_api_helpers import CHARGE, EMAIL, FULFILL, Api

from fake_services import FakeServices, FaultRule, ServicesTransport
from fake_services.testing import serve_in_thread
from harness.clock import VirtualClock


def keyed(api: Api, key: str, body: dict | None = None, path: str = "/payments/charge",
          method: str = "POST") -> httpx.Response:
    return api.http.request(method, path, json=body or CHARGE, headers={"Idempotency-Key": key})


def test_a_retry_after_completion_replays_status_and_body(api: Api) -> None:
    first = keyed(api, '"charge-order-7"')
    again = keyed(api, '"charge-order-7"')
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert len(api.services.payments.records()) == 1
    assert [e.effect for e in api.services.journal.entries()] == [True, False]


def test_quoted_and_bare_keys_name_the_same_key(api: Api) -> None:
    first = keyed(api, "abc-1")
    assert keyed(api, '"abc-1"').json() == first.json()
    assert len(api.services.payments.records()) == 1


def test_a_decline_is_replayed_not_repeated(api: Api) -> None:
    body = {**CHARGE, "amount_cents": 9999}
    first = keyed(api, "k", body)
    again = keyed(api, "k", body)
    assert first.status_code == again.status_code == 200 and again.json()["status"] == "declined"
    assert len(api.services.payments.records()) == 1


def test_an_error_is_replayed_too(api: Api) -> None:
    body = {k: v for k, v in CHARGE.items() if k != "amount_cents"}
    first = keyed(api, "k", body)
    assert first.status_code == 422 and "amount_cents" in first.json()["detail"]
    assert keyed(api, "k", body).json() == first.json()


def test_the_same_key_with_a_different_payload_gets_422(api: Api) -> None:
    keyed(api, "k")
    other = keyed(api, "k", {**CHARGE, "amount_cents": 1})
    assert other.status_code == 422 and "different payload" in other.json()["detail"]
    assert len(api.services.payments.records()) == 1


def test_fulfillment_honours_the_header_and_email_ignores_it(api: Api) -> None:
    first = keyed(api, "ship", FULFILL, "/fulfillment/request", "PUT")
    assert keyed(api, "ship", FULFILL, "/fulfillment/request", "PUT").json() == first.json()
    assert len(api.services.fulfillment.records()) == 1
    keyed(api, "mail", EMAIL, "/email/send")
    keyed(api, "mail", EMAIL, "/email/send")
    assert len(api.services.email.records()) == 2


@pytest.mark.parametrize("raw", ['""', '"abc', 'a"b', '"a"b"', "x" * 256, '"\\n"', "caf\u00e9"])
def test_a_malformed_key_gets_400_and_does_nothing(api: Api, raw: str) -> None:
    response = api.http.post("/payments/charge", json=CHARGE,
                             headers={"Idempotency-Key": raw.encode("utf-8")})
    assert response.status_code == 400 and response.json()["detail"]
    assert api.services.payments.records() == []


def test_after_phase_fault_stores_the_real_result_for_the_key(api: Api) -> None:
    api.services.schedule("payments", FaultRule(fault="503", phase="after", nth=1))
    assert keyed(api, "k").status_code == 503
    retry = keyed(api, "k")
    [record] = api.services.payments.records()
    assert retry.status_code == 201 and retry.json()["charge_id"] == record["charge_id"]


def test_before_phase_fault_leaves_the_key_free(api: Api) -> None:
    api.services.schedule("payments", FaultRule(fault="drop", phase="before", nth=1))
    with pytest.raises(httpx.TransportError):
        keyed(api, "k")
    assert keyed(api, "k").status_code == 201
    assert len(api.services.payments.records()) == 1


def test_keys_expire_after_the_retention_on_the_services_clock() -> None:
    clock = VirtualClock()
    services = FakeServices(clock=clock, idempotency_retention_s=3600)
    with httpx.Client(transport=ServicesTransport(services), base_url="http://fake") as http:
        def send() -> str:
            response = http.post("/payments/charge", json=CHARGE, headers={"Idempotency-Key": "k"})
            return response.json()["charge_id"]

        first = send()
        clock.advance(3599)
        assert send() == first
        clock.advance(1)
        assert send() != first
    assert len(services.payments.records()) == 2


def test_default_retention_is_24_hours() -> None:
    assert FakeServices().idempotency.retention_s == 24 * 3600


class GateClock:
    """A wall clock whose sleep holds the caller until the test opens the gate."""

    blocks = True  # the gate holds the thread like a real sleep: the server must keep it off its loop

    def __init__(self) -> None:
        self.sleeping = threading.Event()
        self.gate = threading.Event()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        self.sleeping.set()
        assert self.gate.wait(10), "the test never opened the gate"


@pytest.mark.parametrize("mode", ["inprocess", "socket"])
def test_a_request_while_the_key_is_in_flight_gets_409(mode: str) -> None:
    clock = GateClock()
    services = FakeServices(clock=clock)
    services.behaviours["payments"].sleep = 1

    def run(http: httpx.Client) -> None:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(http.post, "/payments/charge", json=CHARGE, headers={"Idempotency-Key": "k"})
            assert clock.sleeping.wait(10)
            services.behaviours["payments"].sleep = 0
            second = http.post("/payments/charge", json=CHARGE, headers={"Idempotency-Key": "k"})
            assert second.status_code == 409 and "still being processed" in second.json()["detail"]
            clock.gate.set()
            assert first.result().status_code == 201
        replay = http.post("/payments/charge", json=CHARGE, headers={"Idempotency-Key": "k"})
        assert replay.json() == first.result().json()

    if mode == "inprocess":
        with httpx.Client(transport=ServicesTransport(services), base_url="http://fake") as http:
            run(http)
    else:
        with serve_in_thread(services) as url, httpx.Client(base_url=url) as http:
            run(http)
    assert len(services.payments.records()) == 1


@pytest.mark.parametrize("header", [True, False], ids=["header-key", "metadata-key"])
def test_concurrent_requests_with_one_key_make_one_effect(api: Api, header: bool) -> None:
    api.services.behaviours["payments"].sleep = 0.02  # widen the window in which requests overlap
    body = {**CHARGE, "metadata": {"order_id": 7, **({} if header else {"idempotency_key": "k"})}}
    headers = {"Idempotency-Key": "k"} if header else {}
    start = threading.Barrier(16)

    def send(_: int) -> httpx.Response:
        start.wait()
        return api.http.post("/payments/charge", json=body, headers=headers)

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(send, range(16)))
    assert len(api.services.payments.records()) == 1
    assert {r.status_code for r in responses} <= {201, 409}
    assert len({r.json()["charge_id"] for r in responses if r.status_code == 201}) == 1
    assert len(api.services.effects()) == 1


def test_concurrent_requests_with_different_keys_all_take_effect(api: Api) -> None:
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda n: keyed(api, f"k{n}", {**CHARGE, "amount_cents": n + 1}),
                                  range(40)))
    assert all(r.status_code == 201 for r in responses)
    assert len({r.json()["charge_id"] for r in responses}) == 40
    assert sorted(r["amount_cents"] for r in api.services.payments.records()) == list(range(1, 41))
