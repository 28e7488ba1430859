"""Fixtures for the fake services' tests: one API fixture parametrized over in-process and socket."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from fake_services import FakeServices, ServicesTransport
from fake_services.testing import serve_in_thread


@dataclass
class Api:
    """The services and an httpx client that reaches them in one of the two modes."""

    mode: str
    services: FakeServices
    http: httpx.Client
    base_url: str


@pytest.fixture(scope="session")
def socket_server() -> Iterator[tuple[FakeServices, str]]:
    services = FakeServices(seed=0)
    with serve_in_thread(services) as url:
        yield services, url


@pytest.fixture(params=["inprocess", "socket"])
def api(request: pytest.FixtureRequest) -> Iterator[Api]:
    if request.param == "inprocess":
        services = FakeServices(seed=0)
        with httpx.Client(transport=ServicesTransport(services), base_url="http://fake-services") as http:
            yield Api("inprocess", services, http, "http://fake-services")
        return
    services, url = request.getfixturevalue("socket_server")
    services.reset()
    with httpx.Client(base_url=url, timeout=5.0) as http:
        yield Api("socket", services, http, url)
    services.reset()


CHARGE = {"customer_id": 1, "payment_method_id": "pm_1", "amount_cents": 1500,
          "metadata": {"order_id": 7}}
EMAIL = {"to": "pat@example.com", "template_id": "order-confirmation", "template_data": {"order_id": 7}}
FULFILL = {"customer_id": 1, "address": "1 Main St", "product_id": 3, "quantity": 2,
           "metadata": {"order_id": 7}}
NOTIFY = {"exception_class": "ValueError", "exception_message": "boom"}
