"""The Stripe-compatible fake: Stripe's shapes (form bodies with brackets, its objects and error objects),
its idempotency rules on the services' clock, the fakes' behaviours and faults, and the official `stripe`
package working against it unchanged, on a socket and in-process."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fake_services import FakeServices, FaultRule
from fake_services.stripe import StripeError, stripe_form
from fake_services.testing import serve_in_thread
from fake_services.transport import in_process_client
from harness.clock import VirtualClock

AUTH = {"Authorization": "Bearer sk_test_fake"}
INTENT = {"amount": "4200", "currency": "usd", "payment_method": "pm_card_visa", "confirm": "true",
          "metadata[order_id]": "7"}


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def services(clock: VirtualClock) -> FakeServices:
    return FakeServices(seed=0, clock=clock)


@pytest.fixture
def http(services: FakeServices) -> httpx.Client:
    return in_process_client(services)


def post(http: httpx.Client, path: str, data: dict[str, str], **headers: str) -> httpx.Response:
    return http.post(f"/stripe/v1/{path}", data=data, headers={**AUTH, **headers})


def test_brackets_nest_and_bad_names_are_refused():
    assert stripe_form({"amount": "5", "metadata[order_id]": "7", "metadata[a][b]": "x", "expand[]": "y"}) == {
        "amount": "5", "metadata": {"order_id": "7", "a": {"b": "x"}}, "expand": ["y"]}
    for bad in ("metadata[", "a[b]]", "[x]"):
        with pytest.raises(StripeError):
            stripe_form({bad: "1"})


def test_a_confirmed_payment_intent_charges_and_is_journaled_with_its_metadata(http, services):
    answer = post(http, "payment_intents", INTENT)
    assert answer.status_code == 200, answer.text
    intent = answer.json()
    assert (intent["object"], intent["status"], intent["amount"], intent["metadata"]) == (
        "payment_intent", "succeeded", 4200, {"order_id": "7"})
    assert intent["id"].startswith("pi_") and intent["latest_charge"].startswith("ch_")
    [entry] = services.effects()
    assert (entry.service, entry.operation) == ("stripe", "create_payment_intent")
    assert entry.keys == {"amount": 4200, "currency": "usd", "payment_method": "pm_card_visa",
                          "metadata.order_id": "7"}
    fetched = http.get(f"/stripe/v1/payment_intents/{intent['id']}", headers=AUTH).json()
    assert fetched == intent
    charge = http.get(f"/stripe/v1/charges/{intent['latest_charge']}", headers=AUTH).json()
    assert (charge["status"], charge["payment_intent"], charge["paid"]) == ("succeeded", intent["id"], True)


def test_create_then_confirm_and_refund(http):
    intent = post(http, "payment_intents", {"amount": "500", "currency": "eur"}).json()
    assert intent["status"] == "requires_payment_method"
    confirmed = post(http, f"payment_intents/{intent['id']}/confirm", {"payment_method": "pm_card_visa"}).json()
    assert confirmed["status"] == "succeeded"
    again = post(http, f"payment_intents/{intent['id']}/confirm", {})
    assert again.status_code == 400 and again.json()["error"]["code"] == "payment_intent_unexpected_state"
    refund = post(http, "refunds", {"payment_intent": intent["id"], "amount": "200"}).json()
    assert (refund["object"], refund["amount"], refund["status"]) == ("refund", 200, "succeeded")
    rest = post(http, "refunds", {"charge": confirmed["latest_charge"]}).json()
    assert rest["amount"] == 300
    done = post(http, "refunds", {"charge": confirmed["latest_charge"]})
    assert done.status_code == 400 and done.json()["error"]["code"] == "charge_already_refunded"


@pytest.mark.parametrize(("data", "status", "code"), [
    ({**INTENT, "payment_method": "pm_card_chargeDeclined"}, 402, "card_declined"),
    ({"currency": "usd"}, 400, "parameter_missing"),
    ({"amount": "12.5", "currency": "usd"}, 400, "parameter_invalid_integer"),
    ({"amount": "100", "currency": "USD"}, 400, "parameter_invalid_string"),
    ({"amount": "100", "currency": "usd", "colour": "red"}, 400, "parameter_unknown"),
])
def test_errors_are_stripes_error_objects(http, data, status, code):
    answer = post(http, "payment_intents", data)
    assert answer.status_code == status
    error = answer.json()["error"]
    assert error["code"] == code and error["type"] in ("card_error", "invalid_request_error")


def test_unknown_objects_and_missing_keys(http):
    missing = http.get("/stripe/v1/payment_intents/pi_nothing", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "resource_missing"
    unauthenticated = http.post("/stripe/v1/charges", data={"amount": "1", "currency": "usd", "source": "tok"})
    assert unauthenticated.status_code == 401 and "API key" in unauthenticated.json()["error"]["message"]


def test_a_reused_key_replays_the_first_answer_and_no_second_effect(http, services):
    first = post(http, "payment_intents", INTENT, **{"Idempotency-Key": "order-7"})
    second = post(http, "payment_intents", INTENT, **{"Idempotency-Key": "order-7"})
    assert (second.status_code, second.json()) == (first.status_code, first.json())
    assert len(services.effects()) == 1
    other = post(http, "payment_intents", {**INTENT, "amount": "1"}, **{"Idempotency-Key": "order-7"})
    assert other.status_code == 400 and other.json()["error"]["type"] == "idempotency_error"


def test_a_declined_first_answer_is_replayed_too(http, services):
    declined = {**INTENT, "payment_method": "pm_card_chargeDeclined"}
    first = post(http, "payment_intents", declined, **{"Idempotency-Key": "k"})
    second = post(http, "payment_intents", declined, **{"Idempotency-Key": "k"})
    assert first.status_code == second.status_code == 402 and first.json() == second.json()
    assert len(services.effects()) == 1


def test_a_key_expires_after_24_hours_of_virtual_time(http, services, clock):
    post(http, "payment_intents", INTENT, **{"Idempotency-Key": "order-7"})
    clock.advance(24 * 3600 - 1)
    post(http, "payment_intents", INTENT, **{"Idempotency-Key": "order-7"})
    assert len(services.effects()) == 1
    clock.advance(2)
    post(http, "payment_intents", INTENT, **{"Idempotency-Key": "order-7"})
    assert len(services.effects()) == 2  # the key was forgotten: a second charge


def test_a_lost_answer_then_a_retry_with_the_key_charges_once(http, services):
    services.schedule("stripe", FaultRule(fault="drop", phase="after", operation="create_payment_intent", nth=1))
    with pytest.raises(httpx.RemoteProtocolError):
        post(http, "payment_intents", INTENT, **{"Idempotency-Key": "order-7"})
    again = post(http, "payment_intents", INTENT, **{"Idempotency-Key": "order-7"})
    assert again.status_code == 200 and again.json()["status"] == "succeeded"
    assert len(services.effects()) == 1


def test_behaviours_apply_as_to_every_fake(http, services):
    services.behaviours["stripe"].throttle = True
    assert post(http, "payment_intents", INTENT).status_code == 429
    assert services.effects() == []


def test_the_page_lists_the_objects(http):
    post(http, "payment_intents", INTENT)
    page = http.get("/stripe/ui", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "payment_intent" in page.text and "pi_" in page.text


def _use_stripe(base: str) -> Any:
    stripe = pytest.importorskip("stripe")
    stripe.api_key = "sk_test_fake"
    stripe.api_base = base
    stripe.max_network_retries = 0
    return stripe


def test_the_official_stripe_package_works_unchanged_on_a_socket(services):
    with serve_in_thread(services) as url:
        stripe = _use_stripe(f"{url}/stripe")
        intent = stripe.PaymentIntent.create(amount=4200, currency="usd", payment_method="pm_card_visa",
                                             confirm=True, metadata={"order_id": 7},
                                             idempotency_key="charge-order-7")
        assert intent.status == "succeeded" and intent.metadata["order_id"] == "7"
        replay = stripe.PaymentIntent.create(amount=4200, currency="usd", payment_method="pm_card_visa",
                                             confirm=True, metadata={"order_id": 7},
                                             idempotency_key="charge-order-7")
        assert replay.id == intent.id
        refund = stripe.Refund.create(payment_intent=intent.id)
        assert refund.amount == 4200
        with pytest.raises(stripe.error.CardError):
            stripe.PaymentIntent.create(amount=100, currency="usd", payment_method="pm_card_chargeDeclined",
                                        confirm=True)
        with pytest.raises(stripe.error.InvalidRequestError):
            stripe.PaymentIntent.retrieve("pi_nothing")
    assert [e.operation for e in services.effects()] == ["create_payment_intent", "create_refund",
                                                          "create_payment_intent"]


def test_the_stripe_package_reaches_the_fake_in_process_through_a_mapped_host(services):
    from harness.outbound import Outbound

    stripe = _use_stripe("https://api.stripe.com")
    outbound = Outbound(services)
    outbound.map("https://api.stripe.com", "stripe")
    with outbound.active():
        intent = stripe.PaymentIntent.create(amount=900, currency="usd", payment_method="pm_card_visa",
                                             confirm=True)
    assert intent.status == "succeeded"
    assert [e.operation for e in services.effects()] == ["create_payment_intent"]
    assert outbound.refused == []
