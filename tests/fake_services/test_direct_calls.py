"""The typed clients skip httpx's objects on an in-process client, and nothing they or the services see
changes: the same requests reach the services, the same answers and the same errors come back."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fake_services.behaviours import FAULTS, FaultRule
from fake_services.clients import (
    ChatClient,
    EmailClient,
    ErrorCatcherClient,
    FulfillmentClient,
    PaymentsClient,
    ServiceError,
)
from fake_services.state import FakeServices
from fake_services.transport import ServicesTransport, direct_services, in_process_client
from harness.clock import VirtualClock

BASE = "http://fake-services"


def _services() -> tuple[FakeServices, list[Any]]:
    services = FakeServices(seed=7, clock=VirtualClock(start=1_000.0))
    seen: list[Any] = []
    handle = services.handle

    def watched(call: Any) -> Any:
        seen.append((call.method, call.path, call.query, call.headers, call.body))
        return handle(call)

    services.handle = watched  # type: ignore[method-assign]
    return services, seen


def _calls(http: httpx.Client) -> list[Any]:
    """Every operation of every typed client, with and without keys, parameters and odd characters."""
    payments = PaymentsClient(BASE, http=http)
    email = EmailClient(BASE, http=http)
    out: list[Any] = [
        payments.charge(customer_id="cus_1", payment_method_id="pm_visa", amount_cents=4200,
                        metadata={"order_id": 1, "note": "café ✓"}, idempotency_key='charge "1"'),
        payments.charge(customer_id="cus_1", payment_method_id="pm_visa", amount_cents=4200),
        email.send(to="pat@example.com", template_id="confirm", template_data={"order_id": 1}),
        email.search(email="pat@example.com", template_id="confirm"),
        email.search(email="a+b@example.com", template_id="x&y=z"),
        FulfillmentClient(BASE, http=http).request(customer_id="cus_1", address="1 Main St", product_id=3,
                                                   quantity=2, idempotency_key="ship-1"),
        ErrorCatcherClient(BASE, http=http).notify(exception_class="RuntimeError", exception_message="boom"),
        ChatClient(BASE, http=http).post(text="shipped", channel="#ops"),
    ]
    return out


def _httpx_client(services: FakeServices) -> httpx.Client:
    return httpx.Client(transport=ServicesTransport(services), base_url=BASE)


def test_the_direct_path_is_taken_only_for_a_plain_in_process_client():
    services = FakeServices()
    client = in_process_client(services)
    assert direct_services(client) is services
    assert direct_services(_httpx_client(services)) is None  # built by hand: httpx all the way
    hooked = in_process_client(services, event_hooks={"request": [lambda request: None]})
    assert direct_services(hooked) is None
    replaced = in_process_client(services)
    replaced._transport = ServicesTransport(FakeServices())
    assert direct_services(replaced) is None
    client.close()
    assert direct_services(client) is None


def test_the_services_see_the_same_requests_and_the_clients_the_same_answers():
    direct_services_, direct_seen = _services()
    httpx_services, httpx_seen = _services()
    direct = in_process_client(direct_services_)
    assert direct_services(direct) is direct_services_
    assert _calls(direct) == _calls(_httpx_client(httpx_services))
    assert direct_seen == httpx_seen and len(direct_seen) == 8
    assert direct_services_.payments.records() == httpx_services.payments.records()
    assert [e.operation for e in direct_services_.journal.entries()] == [
        e.operation for e in httpx_services.journal.entries()]


def test_headers_set_on_the_client_reach_the_services_on_the_direct_path():
    services, seen = _services()
    client = in_process_client(services)
    EmailClient(BASE, http=client).search(email="pat@example.com", template_id="t")
    client.headers["X-Team"] = "payments"
    EmailClient(BASE, http=client).search(email="pat@example.com", template_id="t")
    assert "x-team" not in seen[0][3]
    assert seen[1][3]["x-team"] == "payments"
    assert seen[1][3]["host"] == "fake-services"


def _error(http: httpx.Client, fault: str, phase: str) -> tuple[type, str, Any, type | None, Any]:
    services = direct_services(http) or http._transport.services  # type: ignore[attr-defined]
    services.schedule("payments", FaultRule(fault=fault, phase=phase, next=1, retry_after=3))
    with pytest.raises(ServiceError) as caught:
        PaymentsClient(BASE, http=http).charge(customer_id="cus_1", payment_method_id="pm_visa",
                                               amount_cents=100, idempotency_key="k")
    err = caught.value
    cause = err.__cause__
    return (type(err), str(err), (err.status, err.body, getattr(err, "retry_after", None)),
            type(cause) if cause else None, str(cause) if cause else None)


@pytest.mark.parametrize("phase", ["before", "after"])
@pytest.mark.parametrize("fault", FAULTS)
def test_every_fault_raises_the_same_error_on_both_paths(fault, phase):
    direct = in_process_client(FakeServices(seed=3))
    assert direct_services(direct) is not None
    assert _error(direct, fault, phase) == _error(_httpx_client(FakeServices(seed=3)), fault, phase)


def test_records_are_copies_down_to_their_nested_values():
    services = FakeServices(seed=1)
    client = in_process_client(services)
    EmailClient(BASE, http=client).send(to="pat@example.com", template_id="t",
                                        template_data={"order_id": 1, "lines": [{"sku": "a"}]})
    copy = services.email.records()
    copy[0]["template_data"]["lines"][0]["sku"] = "changed"
    copy[0]["template_data"]["order_id"] = 2
    copy.clear()
    assert services.email.records()[0]["template_data"] == {"order_id": 1, "lines": [{"sku": "a"}]}
