"""The seed server's API, endpoint by endpoint, in-process and on a socket."""

from __future__ import annotations

import re

import httpx
import pytest
from fake_api_helpers import CHARGE, EMAIL, FULFILL, NOTIFY, Api

from fake_services import FakeServices, ServicesTransport
from harness.clock import EPOCH, VirtualClock


def test_charge_succeeds_with_201_and_a_charge_id(api: Api) -> None:
    response = api.http.post("/payments/charge", json=CHARGE)
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "success" and re.fullmatch(r"ch_[0-9a-f]{8}", body["charge_id"])
    [record] = api.services.payments.records()
    assert record["charge_id"] == body["charge_id"] and record["amount_cents"] == 1500


def test_9999_cents_is_declined_with_200_recorded_and_never_replayed(api: Api) -> None:
    declined = {**CHARGE, "amount_cents": 9999, "metadata": {"idempotency_key": "k"}}
    first = api.http.post("/payments/charge", json=declined)
    second = api.http.post("/payments/charge", json=declined)
    for response in (first, second):
        assert response.status_code == 200
        assert response.json() == {"status": "declined", "explanation": "Insufficient funds"}
    assert [r["status"] for r in api.services.payments.records()] == ["declined", "declined"]


def test_metadata_key_replays_an_earlier_success(api: Api) -> None:
    keyed = {**CHARGE, "metadata": {"order_id": 7, "idempotency_key": "charge-order-7"}}
    first = api.http.post("/payments/charge", json=keyed).json()
    again = api.http.post("/payments/charge", json={**keyed, "amount_cents": 1})
    assert again.status_code == 201 and again.json() == first
    assert len(api.services.payments.records()) == 1


def test_metadata_keys_compare_as_json_values(api: Api) -> None:
    api.http.put("/fulfillment/request", json={**FULFILL, "metadata": {"idempotency_key": 44}})
    api.http.put("/fulfillment/request", json={**FULFILL, "metadata": {"idempotency_key": "44"}})
    assert len(api.services.fulfillment.records()) == 2


def test_fulfillment_accepts_replays_and_counts(api: Api) -> None:
    keyed = {**FULFILL, "metadata": {"idempotency_key": "ship-7"}}
    first = api.http.put("/fulfillment/request", json=keyed)
    assert first.status_code == 202 and first.json()["status"] == "accepted"
    assert re.fullmatch(r"fr_[0-9a-f]{8}", first.json()["request_id"])
    assert api.http.put("/fulfillment/request", json=keyed).json() == first.json()
    assert api.http.get("/fulfillment/status").json() == {"num_requests": 1}


@pytest.mark.parametrize("address", ["", "   ", None])
def test_fulfillment_rejects_a_blank_address_without_recording(api: Api, address: object) -> None:
    response = api.http.put("/fulfillment/request", json={**FULFILL, "address": address})
    assert response.status_code == 422
    assert response.json() == {"status": "rejected", "error": "Missing address"}
    assert api.services.fulfillment.records() == []


def test_email_is_queued_and_found_by_address_and_template(api: Api) -> None:
    response = api.http.post("/email/send", json=EMAIL)
    assert response.status_code == 202 and response.json()["status"] == "queued"
    api.http.post("/email/send", json={**EMAIL, "template_id": "other"})
    api.http.post("/email/send", json={**EMAIL, "to": "sam@example.com"})
    found = api.http.get("/email/emails", params={"email": EMAIL["to"], "template_id": EMAIL["template_id"]})
    assert found.status_code == 200
    [email] = found.json()
    assert email["email_id"] == response.json()["email_id"] and email["template_data"] == {"order_id": 7}


@pytest.mark.parametrize("missing", ["to", "template_id"])
def test_email_without_a_required_field_is_not_queued(api: Api, missing: str) -> None:
    body = {k: v for k, v in EMAIL.items() if k != missing}
    response = api.http.post("/email/send", json=body)
    assert response.status_code == 422
    assert response.json() == {"status": "not-queued", "errorMessage": f"{missing} required"}


def test_error_catcher_stores_notifications_and_rejects_blank_fields(api: Api) -> None:
    response = api.http.put("/error-catcher/notification", json=NOTIFY)
    assert response.status_code == 202
    assert re.fullmatch(r"err_[0-9a-f]{8}", response.json()["notification_id"])
    blank = api.http.put("/error-catcher/notification", json={**NOTIFY, "exception_message": ""})
    assert blank.status_code == 422 and blank.json() == {"error": "exception class or message is missing"}
    assert [r["exception_class"] for r in api.services.error_catcher.records()] == ["ValueError"]


def test_chat_webhook_answers_ok_and_records_the_message(api: Api) -> None:
    response = api.http.post("/chat/webhook", json={"text": "retries above 50", "channel": "#ops"})
    assert response.status_code == 200 and response.text == "ok"
    assert api.http.get("/chat/messages").json()[0]["text"] == "retries above 50"
    assert api.http.post("/chat/webhook", json={"channel": "#ops"}).status_code == 400


@pytest.mark.parametrize("service", ["payments", "email", "error-catcher", "chat"])
def test_status_endpoints_answer_200(api: Api, service: str) -> None:
    assert api.http.get(f"/{service}/status").status_code == 200


@pytest.mark.parametrize(
    ("send", "clear", "service"),
    [(("POST", "/payments/charge", CHARGE), "/payments/charges", "payments"),
     (("PUT", "/fulfillment/request", FULFILL), "/fulfillment/requests", "fulfillment"),
     (("POST", "/email/send", EMAIL), "/email/emails", "email"),
     (("PUT", "/error-catcher/notification", NOTIFY), "/error-catcher/notifications", "error-catcher"),
     (("POST", "/chat/webhook", {"text": "hi"}), "/chat/messages", "chat")],
)
def test_each_service_clears_only_itself(api: Api, send: tuple, clear: str, service: str) -> None:
    method, path, body = send
    api.http.request(method, path, json=body)
    api.http.post("/chat/webhook", json={"text": "witness"})
    assert api.http.delete(clear).status_code == 200
    assert api.services.services[service].records() == []
    if service != "chat":
        assert len(api.services.chat.records()) == 1


def test_accept_that_allows_neither_json_nor_html_gets_406(api: Api) -> None:
    response = api.http.post("/payments/charge", json=CHARGE, headers={"Accept": "text/plain"})
    assert response.status_code == 406
    assert api.http.get("/payments/status", headers={"Accept": "text/html"}).status_code == 200
    assert api.services.payments.records() == []


def test_a_body_that_is_not_json_gets_422_with_a_problem(api: Api) -> None:
    response = api.http.post("/payments/charge", content=b"{not json",
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "JSON" in response.json()["detail"]


def test_x_throttle_answers_429_before_any_effect(api: Api) -> None:
    response = api.http.post("/payments/charge", json=CHARGE, headers={"X-Throttle": "true"})
    assert response.status_code == 429 and "retry-after" not in response.headers
    assert api.services.payments.records() == []


def test_x_crash_answers_503_or_504_before_any_effect(api: Api) -> None:
    statuses = {api.http.post("/payments/charge", json=CHARGE, headers={"X-Crash": "true"}).status_code
                for _ in range(12)}
    assert statuses <= {503, 504} and statuses
    assert api.services.payments.records() == []


def test_header_values_other_than_true_are_ignored(api: Api) -> None:
    response = api.http.post("/payments/charge", json=CHARGE, headers={"X-Crash": "yes", "X-Throttle": "1"})
    assert response.status_code == 201


def test_x_crash_on_email_send_stores_the_email_then_answers_503(api: Api) -> None:
    response = api.http.post("/email/send", json=EMAIL, headers={"X-Crash": "true"})
    assert response.status_code == 503
    assert len(api.services.email.records()) == 1
    invalid = api.http.post("/email/send", json={"to": "x@example.com"}, headers={"X-Crash": "true"})
    assert invalid.status_code == 503 and len(api.services.email.records()) == 1


def test_x_throttle_on_email_send_stores_nothing(api: Api) -> None:
    assert api.http.post("/email/send", json=EMAIL, headers={"X-Throttle": "true"}).status_code == 429
    assert api.services.email.records() == []


def test_x_be_slow_with_a_number_still_answers(api: Api) -> None:
    response = api.http.post("/payments/charge", json=CHARGE, headers={"X-Be-Slow": "0.01"})
    assert response.status_code == 201


def test_ui_pages_show_records_as_html_tables(api: Api) -> None:
    charge_id = api.http.post("/payments/charge", json=CHARGE).json()["charge_id"]
    api.http.post("/email/send", json=EMAIL)
    page = api.http.get("/payments/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<table" in page.text and charge_id in page.text
    assert EMAIL["to"] in api.http.get("/email/ui").text
    index = api.http.get("/")
    for service in ("payments", "email", "fulfillment", "error-catcher", "chat"):
        assert f'href="/{service}/ui"' in index.text


def test_unknown_paths_and_methods_get_problems(api: Api) -> None:
    missing = api.http.get("/payments/refund")
    assert missing.status_code == 404 and "/payments/charge" in missing.json()["detail"]
    wrong = api.http.get("/payments/charge")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert api.http.get("/nowhere").status_code == 404


def test_email_search_matches_every_parameter_given(api: Api) -> None:
    api.http.post("/email/send", json=EMAIL)
    api.http.post("/email/send", json={**EMAIL, "template_id": "welcome"})
    by_address = api.http.get("/email/emails", params={"email": EMAIL["to"]})
    assert by_address.status_code == 200 and len(by_address.json()) == 2
    by_template = api.http.get("/email/emails", params={"template_id": "welcome"}).json()
    assert [e["template_id"] for e in by_template] == ["welcome"]
    assert api.http.get("/email/emails", params={"email": "nobody@example.com"}).json() == []
    assert len(api.http.get("/email/emails").json()) == 2


@pytest.mark.parametrize(("send", "listing"), [
    (("POST", "/payments/charge", CHARGE), "/payments/charges"),
    (("PUT", "/fulfillment/request", FULFILL), "/fulfillment/requests"),
    (("PUT", "/error-catcher/notification", NOTIFY), "/error-catcher/notifications"),
])
def test_list_endpoints_return_the_records(api: Api, send: tuple, listing: str) -> None:
    method, path, body = send
    api.http.request(method, path, json=body)
    listed = api.http.get(listing)
    assert listed.status_code == 200 and len(listed.json()) == 1
    assert listed.json()[0]["customer_id" if "notification" not in path else "exception_class"]


def test_x_be_slow_true_sleeps_one_to_ten_seconds_on_the_services_clock() -> None:
    clock = VirtualClock()
    services = FakeServices(seed=1, clock=clock)
    with httpx.Client(transport=ServicesTransport(services), base_url="http://fake") as http:
        slept = []
        for _ in range(30):
            before = clock.time()
            response = http.post("/chat/webhook", json={"text": "x"}, headers={"X-Be-Slow": "true"})
            assert response.status_code == 200
            slept.append(clock.time() - before)
    assert set(slept) <= set(range(1, 11)) and len(set(slept)) > 3


def test_slow_combines_with_throttle_and_crash() -> None:
    clock = VirtualClock()
    services = FakeServices(clock=clock)
    with httpx.Client(transport=ServicesTransport(services), base_url="http://fake") as http:
        slow = {"X-Be-Slow": "4"}
        throttled = http.post("/payments/charge", json=CHARGE, headers={**slow, "X-Throttle": "true"})
        crashed = http.post("/payments/charge", json=CHARGE, headers={**slow, "X-Crash": "true"})
    assert throttled.status_code == 429 and crashed.status_code in (503, 504)
    assert clock.time() - EPOCH == 8
    assert services.payments.records() == []
