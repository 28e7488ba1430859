"""The typed clients: contracts, error classification, and the transport's other uses (async, respx)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fake_api_helpers import CHARGE, Api

from fake_services import FakeServices, FaultRule, ServicesTransport
from fake_services.clients import (
    ChargeResult,
    ChatClient,
    EmailClient,
    ErrorCatcherClient,
    FulfillmentClient,
    PaymentsClient,
    PermanentServiceError,
    ServiceError,
    TransientServiceError,
)


def test_each_client_keeps_its_contract(api: Api) -> None:
    payments = PaymentsClient(api.base_url, http=api.http)
    ok = payments.charge(customer_id=1, payment_method_id="pm", amount_cents=100, metadata={"order_id": 1})
    assert ok.status == "success" and ok.charge_id and ok.charge_id.startswith("ch_")
    assert payments.charge(customer_id=1, payment_method_id="pm", amount_cents=9999) == ChargeResult(
        "declined", None, "Insufficient funds")
    email = EmailClient(api.base_url, http=api.http)
    email_id = email.send(to="a@example.com", template_id="t", template_data={"order_id": 1})
    assert [e["email_id"] for e in email.search(email="a@example.com", template_id="t")] == [email_id]
    request_id = FulfillmentClient(api.base_url, http=api.http).request(
        customer_id=1, address="1 Main St", product_id=2, quantity=1, idempotency_key="ship-1")
    assert request_id.startswith("fr_")
    notification = ErrorCatcherClient(api.base_url, http=api.http).notify(
        exception_class="E", exception_message="m")
    assert notification.startswith("err_")
    assert ChatClient(api.base_url, http=api.http).post(text="hi", channel="#ops") is None
    assert api.services.chat.records()[0]["channel"] == "#ops"


def test_idempotency_key_argument_sends_the_header(api: Api) -> None:
    payments = PaymentsClient(api.base_url, http=api.http)
    first = payments.charge(customer_id=1, payment_method_id="pm", amount_cents=5, idempotency_key='a"b')
    again = payments.charge(customer_id=1, payment_method_id="pm", amount_cents=5, idempotency_key='a"b')
    assert first == again and len(api.services.payments.records()) == 1
    assert api.services.journal.entries()[0].keys["idempotency_key"] == 'a"b'


@pytest.mark.parametrize(("fault", "status"), [("500", 500), ("503", 503), ("429", 429),
                                                ("malformed", 201)])
def test_server_faults_are_transient(api: Api, fault: str, status: int) -> None:
    api.services.schedule("payments", FaultRule(fault=fault, nth=1, retry_after=3))
    payments = PaymentsClient(api.base_url, http=api.http)
    with pytest.raises(TransientServiceError) as caught:
        payments.charge(customer_id=1, payment_method_id="p", amount_cents=1)
    assert caught.value.status == status
    assert caught.value.retry_after == (3.0 if fault == "429" else None)


def test_a_key_in_flight_is_transient_and_bad_input_is_permanent(api: Api) -> None:
    fulfillment = FulfillmentClient(api.base_url, http=api.http)
    with pytest.raises(PermanentServiceError) as caught:
        fulfillment.request(customer_id=1, address="", product_id=2, quantity=1)
    assert caught.value.status == 422
    assert caught.value.body == {"status": "rejected", "error": "Missing address"}
    with pytest.raises(PermanentServiceError):
        EmailClient(api.base_url, http=api.http).send(to="", template_id="t", template_data={})
    assert issubclass(TransientServiceError, ServiceError) and issubclass(PermanentServiceError, ServiceError)


def test_chat_answer_other_than_ok_is_transient(api: Api) -> None:
    api.services.schedule("chat", FaultRule(fault="malformed", nth=1))
    with pytest.raises(TransientServiceError):
        ChatClient(api.base_url, http=api.http).post(text="hi")


def test_a_client_without_an_http_client_makes_its_own() -> None:
    with PaymentsClient("http://127.0.0.1:9", timeout=0.5) as payments, \
            pytest.raises(TransientServiceError, match="connect"):
        payments.charge(customer_id=1, payment_method_id="p", amount_cents=1)


def test_the_transport_works_with_an_async_client() -> None:
    services = FakeServices()

    async def main() -> list[int]:
        transport = ServicesTransport(services)
        async with httpx.AsyncClient(transport=transport, base_url="http://fake") as http:
            answers = await asyncio.gather(*[http.post("/payments/charge", json=CHARGE) for _ in range(5)])
            services.schedule("payments", FaultRule(fault="timeout", nth=1))
            with pytest.raises(httpx.ReadTimeout):
                await http.post("/payments/charge", json=CHARGE)
            return [a.status_code for a in answers]

    assert asyncio.run(main()) == [201] * 5
    assert len(services.payments.records()) == 5


def test_a_slow_call_on_the_wall_clock_runs_off_the_async_loop() -> None:
    services = FakeServices()
    services.behaviours["chat"].sleep = 0.3

    async def main() -> tuple[int, int]:
        async with httpx.AsyncClient(transport=ServicesTransport(services), base_url="http://fake") as http:
            slow = asyncio.ensure_future(http.post("/chat/webhook", json={"text": "slow"}))
            await asyncio.sleep(0)
            fast = await http.post("/payments/charge", json=CHARGE)  # answered while chat sleeps
            finished_first = slow.done()
            return fast.status_code, (await slow).status_code if not finished_first else -1

    assert asyncio.run(main()) == (201, 200)


def test_respx_can_route_to_the_services() -> None:
    respx = pytest.importorskip("respx")
    services = FakeServices()
    with respx.mock(assert_all_called=True) as router:
        router.route(host="payments.example").mock(side_effect=ServicesTransport(services))
        result = PaymentsClient("https://payments.example").charge(
            customer_id=1, payment_method_id="p", amount_cents=10)
    assert result.status == "success" and services.payments.records()[0]["amount_cents"] == 10


def test_the_in_process_client_answers_and_still_keeps_cookies_that_are_set() -> None:
    from fake_services.transport import in_process_client

    services = FakeServices(seed=0)
    with in_process_client(services) as client:
        charge = PaymentsClient(str(client.base_url), http=client).charge(
            customer_id=1, payment_method_id=1, amount_cents=100)
        assert charge.status == "success" and len(services.payments.records()) == 1
        # the fast path is in place (if httpx moved the attribute, this client would be slower, not wrong)
        assert type(client.cookies).__name__ == "_CookiesParsedOnlyWhenSet"
        request = httpx.Request("GET", "http://fake-services/x")
        client.cookies.extract_cookies(httpx.Response(200, request=request))
        assert dict(client.cookies) == {}
        client.cookies.extract_cookies(httpx.Response(200, headers={"set-cookie": "session=abc; Path=/"},
                                                      request=request))
        assert dict(client.cookies) == {"session": "abc"}
